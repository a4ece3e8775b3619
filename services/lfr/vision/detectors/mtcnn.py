"""MTCNN face detector: the P-Net / R-Net / O-Net cascade in numpy + OpenCV around three ONNX nets.

Why this shape: the nets are tiny, so on a CPU the cost is dominated by how many pixels P-Net sees and by
Python overhead per candidate. The cascade therefore:

* starts the image pyramid at the configured minimum face size (a 40 px face maps to P-Net's 12 px
  window), so no work is spent on faces the deployment would discard anyway;
* builds each pyramid level from the previous level (INTER_AREA), not from the full frame, so a 1080p
  frame is read once;
* runs P-Net once per level on uint8-valued pixels (BGR order and normalisation are folded into the ONNX
  graph), thresholds the probability map in numpy and suppresses per level with vectorised NMS;
* holds P-Net to a stricter threshold on the finest levels (``first_level_thresholds``): they hold most of
  the frame's pixels, so most of the background windows that pass P-Net and cost an R-Net call each
  (on the 1080p street video 0.8/0.7 there cut the frame's time by about a tenth with no labelled face lost;
  ``evaluate.reference_agreement`` checks it against the reference cascade on unlabelled frames);
* batches every R-Net and O-Net candidate of the frame into one ONNX call each.

Landmarks come out in MTCNN's order: image-left eye, image-right eye, nose tip, image-left and
image-right mouth corners.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import onnxruntime as ort

from lfr.core.config import DetectorSettings, Settings
from lfr.vision.boxes import nms
from lfr.vision.cards import ModelCard
from lfr.vision.detectors import register_detector
from lfr.vision.detectors.base import Detection, check_image
from lfr.vision.runtime import make_session

PNET_CELL = 12
PNET_STRIDE = 2
# Overlap (IoU) above which the lower-scored candidate is dropped. The reference MTCNN uses 0.7 across pyramid
# levels and after R-Net; 0.5 keeps one candidate per face just the same (two different faces' boxes do not
# overlap by half) but cuts the R-Net batch by about a fifth and the O-Net batch by about two thirds on the
# 1080p street video, with unchanged recall on its labelled faces (tests/integration/vision).
NMS_LEVEL = 0.5
NMS_ACROSS = 0.5
NMS_RNET = 0.5
NMS_ONET = 0.7
SHRT_MAX = 32767
# R-Net / O-Net candidates per ONNX call. One call per frame's worth of candidates (hundreds on a busy 1080p
# street frame) makes R-Net's first activation map outgrow the CPU caches: 324 candidates took 35 ms in one
# call and 23 ms in chunks of 32 (same outputs), while chunks below 16 start paying per-call overhead.
REFINE_CHUNK = 32
# P-Net output rows per ONNX call on large pyramid levels, for the same reason: a 576x324 level's 10-channel
# first activation map is 7 MB; horizontal strips that overlap by P-Net's receptive field give bit-identical
# maps (tests/unit/vision) and cut that level from about 16.7 to 13.5 ms.
PNET_STRIP_ROWS = 16


def pyramid_scales(height: int, width: int, min_face_px: int, factor: float) -> list[float]:
    """Scales at which P-Net's 12 px window covers faces from ``min_face_px`` up to the whole frame."""
    m = PNET_CELL / float(min_face_px)
    min_side = min(height, width) * m
    scales: list[float] = []
    s = m
    while min_side >= PNET_CELL:
        scales.append(s)
        s *= factor
        min_side *= factor
    return scales


def square(boxes: np.ndarray) -> np.ndarray:
    """Grow x1,y1,x2,y2 boxes to squares about their centres (R-Net and O-Net take square crops)."""
    out = boxes.copy()
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    out[:, 0] = boxes[:, 0] + w * 0.5 - side * 0.5
    out[:, 1] = boxes[:, 1] + h * 0.5 - side * 0.5
    out[:, 2] = out[:, 0] + side
    out[:, 3] = out[:, 1] + side
    return out


def regress(boxes: np.ndarray, reg: np.ndarray) -> np.ndarray:
    """Apply MTCNN's box regression: offsets are fractions of the box width/height per edge."""
    w = (boxes[:, 2] - boxes[:, 0])[:, None]
    h = (boxes[:, 3] - boxes[:, 1])[:, None]
    out = boxes.copy()
    out[:, 0:4] = boxes[:, 0:4] + reg * np.hstack([w, h, w, h])
    return out


def shrink(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """INTER_AREA downscale, with an integer-factor pre-shrink first (OpenCV's fast path for area
    resampling), which makes the first 1080p pyramid level about three times cheaper."""
    h, w = image.shape[:2]
    k = min(w // width, h // height)
    if k >= 2:
        image = cv2.resize(image, (w // k, h // k), interpolation=cv2.INTER_AREA)
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


Level = tuple[float, float, np.ndarray]  # (x scale, y scale, image) of one pyramid level


def crop_patches(levels: list[Level], boxes: np.ndarray, size: int) -> np.ndarray:
    """Sample each x1,y1,x2,y2 box as a size x size patch (zero outside the frame), all in a few calls.

    Each box is read from the smallest pyramid level on which it still spans at least ``size`` pixels, so
    bilinear sampling never decimates by more than the pyramid factor (no aliasing), and every box that
    shares a level is sampled by one ``cv2.remap`` call instead of one crop-and-resize per box.
    """
    n = len(boxes)
    out = np.zeros((n, size, size, 3), dtype=np.uint8)
    if n == 0:
        return out
    side = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]).astype(np.float64)
    scales = np.asarray([lv[0] for lv in levels])
    # Smallest-scale level with side * scale >= size; the full frame (scale 1) when none suffices.
    ok = (side[:, None] * scales[None, :]) >= size
    masked = np.where(ok, scales[None, :], np.inf)
    choice = np.argmin(masked, axis=1)
    choice[~ok.any(axis=1)] = int(np.argmax(scales))
    grid = (np.arange(size, dtype=np.float64) + 0.5) / size
    per_call = (SHRT_MAX - 1) // size  # cv2.remap keeps map dimensions below SHRT_MAX
    for li in np.unique(choice):
        sx, sy, img = levels[int(li)]
        all_idx = np.flatnonzero(choice == li)
        for start in range(0, len(all_idx), per_call):
            idx = all_idx[start : start + per_call]
            _remap_into(out, idx, boxes[idx].astype(np.float64), sx, sy, img, grid, size)
    return out


def _remap_into(
    out: np.ndarray,
    idx: np.ndarray,
    b: np.ndarray,
    sx: float,
    sy: float,
    img: np.ndarray,
    grid: np.ndarray,
    size: int,
) -> None:
    """Sample boxes ``b`` from one pyramid level into ``out[idx]``, stacked as one tall remap image."""
    n = len(idx)
    xs = (b[:, 0:1] + grid[None, :] * (b[:, 2:3] - b[:, 0:1])) * sx - 0.5
    ys = (b[:, 1:2] + grid[None, :] * (b[:, 3:4] - b[:, 1:2])) * sy - 0.5
    mapx = np.broadcast_to(xs[:, None, :], (n, size, size)).reshape(-1, size).astype(np.float32)
    mapy = np.broadcast_to(ys[:, :, None], (n, size, size)).reshape(-1, size).astype(np.float32)
    sampled = cv2.remap(img, mapx, mapy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    out[idx] = sampled.reshape(n, size, size, 3)


def pnet_rows(height: int) -> int:
    """P-Net's output rows for an input ``height``: 3x3 valid conv, 2x2/2 SAME pool, two 3x3 valid convs."""
    return -(-(height - 2) // 2) - 4


def pnet_strips(height: int, rows: int) -> list[tuple[int, int, int, int]]:
    """(output row from, to, input row from, to) per strip, so the strips' maps join into the whole map.

    Output row ``o`` sees input rows ``2o .. 2o+11``; a strip starting at an even input row pools the same
    pairs as the whole level, and only the last strip reaches the bottom edge, where SAME padding applies.
    """
    total = pnet_rows(height)
    out: list[tuple[int, int, int, int]] = []
    for o0 in range(0, max(total, 0), rows):
        o1 = min(o0 + rows, total)
        out.append((o0, o1, 2 * o0, height if o1 == total else 2 * o1 + 10))
    return out


class MtcnnDetector:
    """The three-stage cascade; thresholds, minimum face size and pyramid factor from DetectorSettings."""

    landmark_scheme = "mtcnn5"

    def __init__(self, card: ModelCard, settings: Settings) -> None:
        card.verify_files()
        self.card = card
        self.model_id = card.model_id
        self.cfg: DetectorSettings = settings.detector
        self._pnet = make_session(card.file("pnet"), settings.models)
        self._rnet = make_session(card.file("rnet"), settings.models)
        self._onet = make_session(card.file("onet"), settings.models)

    # ---- stage 1 --------------------------------------------------------------------------------------

    def _pnet_maps(self, level: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """P-Net's probability and regression maps for one level, in strips when the level is tall."""
        x = level[None].astype(np.float32)
        if pnet_rows(level.shape[0]) <= 2 * PNET_STRIP_ROWS:
            prob, reg = self._pnet.run(None, {"input": x})
            return prob, reg
        probs, regs = [], []
        for o0, o1, i0, i1 in pnet_strips(level.shape[0], PNET_STRIP_ROWS):
            p, r = self._pnet.run(None, {"input": x[:, i0:i1]})
            probs.append(p[:, : o1 - o0])
            regs.append(r[:, :, : o1 - o0])
        return np.concatenate(probs, axis=1), np.concatenate(regs, axis=2)

    def _proposals(self, image: np.ndarray, min_face_px: int, levels: list[Level]) -> np.ndarray:
        h, w = image.shape[:2]
        found: list[np.ndarray] = []
        level = image
        for index, scale in enumerate(pyramid_scales(h, w, min_face_px, self.cfg.scale_factor)):
            threshold = self.cfg.pnet_threshold(index)
            hs, ws = math.ceil(h * scale), math.ceil(w * scale)
            level = shrink(level, ws, hs)
            levels.append((ws / w, hs / h, level))
            prob, reg = self._pnet_maps(level)
            ys, xs = np.nonzero(prob[0] >= threshold)
            if ys.size == 0:
                continue
            score = prob[0][ys, xs]
            offsets = reg[0][:, ys, xs].T
            x1 = np.floor((PNET_STRIDE * xs + 1) / scale)
            y1 = np.floor((PNET_STRIDE * ys + 1) / scale)
            x2 = np.floor((PNET_STRIDE * xs + PNET_CELL) / scale)
            y2 = np.floor((PNET_STRIDE * ys + PNET_CELL) / scale)
            cand = np.column_stack([x1, y1, x2, y2, score, offsets]).astype(np.float32)
            found.append(cand[nms(cand[:, :4], cand[:, 4], NMS_LEVEL)])
        if not found:
            return np.empty((0, 5), np.float32)
        allc = np.concatenate(found)
        allc = allc[nms(allc[:, :4], allc[:, 4], NMS_ACROSS)]
        boxes = regress(allc[:, :5], allc[:, 5:9])
        return square(boxes)

    # ---- stages 2 and 3 -------------------------------------------------------------------------------

    @staticmethod
    def _chunked(session: ort.InferenceSession, patches: np.ndarray) -> list[np.ndarray]:
        """Run ``session`` over ``patches`` REFINE_CHUNK at a time and join each output along N."""
        parts = [
            session.run(None, {"input": patches[i : i + REFINE_CHUNK]})
            for i in range(0, len(patches), REFINE_CHUNK)
        ]
        return [np.concatenate([p[k] for p in parts]) for k in range(len(parts[0]))]

    def _refine(self, levels: list[Level], boxes: np.ndarray) -> np.ndarray:
        patches = crop_patches(levels, boxes, 24).astype(np.float32)
        prob, reg = self._chunked(self._rnet, patches)
        keep = prob >= self.cfg.thresholds[1]
        if not keep.any():
            return np.empty((0, 5), np.float32)
        cand = boxes[keep].copy()
        cand[:, 4] = prob[keep]
        reg = reg[keep]
        k = nms(cand[:, :4], cand[:, 4], NMS_RNET)
        return square(regress(cand[k], reg[k]))

    def _output(self, levels: list[Level], boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        patches = crop_patches(levels, boxes, 48).astype(np.float32)
        prob, reg, lm = self._chunked(self._onet, patches)
        keep = prob >= self.cfg.thresholds[2]
        if not keep.any():
            return np.empty((0, 5), np.float32), np.empty((0, 5, 2), np.float32)
        cand = boxes[keep].copy()
        cand[:, 4] = prob[keep]
        w = (cand[:, 2] - cand[:, 0])[:, None]
        h = (cand[:, 3] - cand[:, 1])[:, None]
        lm = lm[keep]
        points = np.stack([cand[:, 0:1] + w * lm[:, 0:5], cand[:, 1:2] + h * lm[:, 5:10]], axis=2)
        cand = regress(cand, reg[keep])
        k = nms(cand[:, :4], cand[:, 4], NMS_ONET, mode="min")
        return cand[k], points[k].astype(np.float32)

    # ---- public ---------------------------------------------------------------------------------------

    def refine_landmarks(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """O-Net's five points (N, 5, 2) for faces found by another detector (x1, y1, x2, y2 boxes).

        Each box is squared about its centre, as R-Net's candidates are before O-Net sees them, and read
        from a halving pyramid so a large face is not aliased into the 48 px patch. No threshold or NMS:
        the other detector already decided these are faces; only the landmarks are taken.
        """
        b = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        if not len(b):
            return np.empty((0, 5, 2), np.float32)
        sq = square(np.concatenate([b, np.zeros((len(b), 1), np.float32)], axis=1))
        h, w = image.shape[:2]
        levels: list[Level] = [(1.0, 1.0, image)]
        level, s = image, 1.0
        # crop_patches reads each box from the smallest level where it still spans 48 px, so levels smaller
        # than that for the largest box would never be read: stop there instead of halving the whole frame.
        largest = float(np.max(sq[:, 2] - sq[:, 0]))
        while min(h, w) * s * 0.5 >= 48 and largest * s * 0.5 >= 48:
            s *= 0.5
            level = shrink(level, max(1, math.ceil(w * s)), max(1, math.ceil(h * s)))
            levels.append((level.shape[1] / w, level.shape[0] / h, level))
        patches = crop_patches(levels, sq, 48).astype(np.float32)
        _, _, lm = self._chunked(self._onet, patches)
        side_w = (sq[:, 2] - sq[:, 0])[:, None]
        side_h = (sq[:, 3] - sq[:, 1])[:, None]
        pts = np.stack([sq[:, 0:1] + side_w * lm[:, 0:5], sq[:, 1:2] + side_h * lm[:, 5:10]], axis=2)
        return pts.astype(np.float32)

    def detect(self, image_bgr: np.ndarray, min_face_px: int | None = None) -> list[Detection]:
        """Faces in a BGR frame, highest score first. Raises ImageTooLargeError above max_image_pixels."""
        image = check_image(image_bgr, self.cfg.max_image_pixels)
        levels: list[Level] = [(1.0, 1.0, image)]
        boxes = self._proposals(image, min_face_px or self.cfg.min_face_px, levels)
        if len(boxes):
            boxes = self._refine(levels, boxes)
        if not len(boxes):
            return []
        boxes, points = self._output(levels, boxes)
        h, w = image.shape[:2]
        out: list[Detection] = []
        for box, pts in zip(boxes, points, strict=True):
            x1, y1 = max(float(box[0]), 0.0), max(float(box[1]), 0.0)
            x2, y2 = min(float(box[2]), float(w)), min(float(box[3]), float(h))
            if x2 <= x1 or y2 <= y1:
                continue
            out.append(Detection(bbox=(x1, y1, x2 - x1, y2 - y1), landmarks=pts, score=float(box[4])))
        out.sort(key=lambda d: -d.score)
        return out


@register_detector("mtcnn")
def _factory(card: ModelCard, settings: Settings) -> MtcnnDetector:
    return MtcnnDetector(card, settings)
