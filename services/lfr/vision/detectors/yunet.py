"""YuNet face detector (libfacedetection, 2023mar) on onnxruntime: one network pass per frame.

Why it exists beside MTCNN: YuNet is a single small fully convolutional network (75 k parameters) that
predicts a box, a score and five landmarks for every cell of three feature grids (strides 8, 16, 32), so
its cost grows with the frame's pixels only, not with how many candidate windows a cascade must refine. The
frame is shrunk so that the smallest face a deployment wants (``detector.min_face_px``) lands at the size
YuNet still finds reliably (``detector.yunet.reliable_face_px``); a 1080p street frame with a 40 px minimum
is analysed at about 864 x 486.

Decoding follows OpenCV's ``FaceDetectorYN`` for this model: score = sqrt(cls x obj), box centre = (cell +
offset) x stride, size = exp(log-size) x stride, landmarks = (cell + offset) x stride; then greedy NMS.
Landmarks come out in the same order as MTCNN's (image-left eye, image-right eye, nose tip, image-left and
image-right mouth corner), checked against MTCNN on real photos (tests/integration/vision), under the
scheme name ``yunet5`` because the points sit slightly differently from MTCNN's on the same face.
"""

from __future__ import annotations

import cv2
import numpy as np

from lfr.core.config import Settings
from lfr.vision.boxes import nms
from lfr.vision.cards import ModelCard, find_card
from lfr.vision.detectors import register_detector
from lfr.vision.detectors.base import Detection, check_image
from lfr.vision.detectors.mtcnn import MtcnnDetector
from lfr.vision.runtime import make_session

STRIDES = (8, 16, 32)
ALIGN = 32  # the network's coarsest stride: input sides must be multiples of it
MAX_CANDIDATES = 5000


def analysis_scale(min_face_px: int, reliable_face_px: int) -> float:
    """The factor a frame is shrunk by so ``min_face_px`` faces reach ``reliable_face_px`` (<= 1)."""
    return min(1.0, reliable_face_px / float(min_face_px))


def decode(
    outputs: dict[str, np.ndarray], height: int, width: int, score_threshold: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boxes (x1, y1, x2, y2), scores and landmarks (N, 5, 2) above ``score_threshold``, in input pixels."""
    boxes, scores, points = [], [], []
    for s in STRIDES:
        rows, cols = height // s, width // s
        cls = np.clip(outputs[f"cls_{s}"].reshape(-1), 0.0, 1.0)
        obj = np.clip(outputs[f"obj_{s}"].reshape(-1), 0.0, 1.0)
        score = np.sqrt(cls * obj)
        keep = np.flatnonzero(score >= score_threshold)
        if not len(keep):
            continue
        r, c = np.divmod(keep, cols)
        assert rows * cols == len(score), "output grid does not match the input size"
        bb = outputs[f"bbox_{s}"].reshape(-1, 4)[keep]
        kp = outputs[f"kps_{s}"].reshape(-1, 5, 2)[keep]
        cx, cy = (c + bb[:, 0]) * s, (r + bb[:, 1]) * s
        w, h = np.exp(bb[:, 2]) * s, np.exp(bb[:, 3]) * s
        boxes.append(np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1))
        scores.append(score[keep])
        pts = np.empty_like(kp)
        pts[..., 0] = (kp[..., 0] + c[:, None]) * s
        pts[..., 1] = (kp[..., 1] + r[:, None]) * s
        points.append(pts)
    if not boxes:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32)
    return (
        np.concatenate(boxes).astype(np.float32),
        np.concatenate(scores).astype(np.float32),
        np.concatenate(points).astype(np.float32),
    )


class YunetDetector:
    def __init__(self, card: ModelCard, settings: Settings, refiner: MtcnnDetector | None = None) -> None:
        card.verify_files()
        self.card = card
        self.cfg = settings.detector
        self._refiner = refiner
        # With O-Net's landmarks the chips are MTCNN's (scheme mtcnn5); the model id names both models,
        # since both decide what a crop looks like.
        self.landmark_scheme = "mtcnn5" if refiner is not None else "yunet5"
        self.model_id = card.model_id if refiner is None else f"{card.model_id}+onet:{refiner.model_id}"
        self._session = make_session(card.file("model"), settings.models)
        self._input = self._session.get_inputs()[0].name
        self._outputs = [o.name for o in self._session.get_outputs()]

    def _run(self, image: np.ndarray) -> dict[str, np.ndarray]:
        h, w = image.shape[:2]
        ph, pw = -(-h // ALIGN) * ALIGN, -(-w // ALIGN) * ALIGN
        if (ph, pw) != (h, w):
            image = cv2.copyMakeBorder(image, 0, ph - h, 0, pw - w, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        blob = image.transpose(2, 0, 1)[None].astype(np.float32)
        outs = self._session.run(self._outputs, {self._input: blob})
        return dict(zip(self._outputs, outs, strict=True))

    def detect(self, image_bgr: np.ndarray, min_face_px: int | None = None) -> list[Detection]:
        """Faces in a BGR frame, highest score first. Raises ImageTooLargeError above max_image_pixels."""
        image = check_image(image_bgr, self.cfg.max_image_pixels)
        h, w = image.shape[:2]
        min_px = min_face_px or self.cfg.min_face_px
        scale = analysis_scale(min_px, self.cfg.yunet.reliable_face_px)
        small = image
        if scale < 1.0:
            sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
            small = cv2.resize(image, (sw, sh), interpolation=cv2.INTER_AREA)
        sh, sw = small.shape[:2]
        outs = self._run(small)
        ph, pw = -(-sh // ALIGN) * ALIGN, -(-sw // ALIGN) * ALIGN
        boxes, scores, points = decode(outs, ph, pw, self.cfg.yunet.score_threshold)
        if not len(boxes):
            return []
        keep = nms(boxes, scores, self.cfg.yunet.nms_threshold)[:MAX_CANDIDATES]
        fx, fy = w / float(sw), h / float(sh)
        frame_boxes = boxes[keep] * np.array([fx, fy, fx, fy], dtype=np.float32)
        frame_points = points[keep] * np.array([fx, fy], dtype=np.float32)
        if self._refiner is not None:
            frame_points = self._refiner.refine_landmarks(image, frame_boxes)
        out: list[Detection] = []
        for i, (box, pts) in enumerate(zip(frame_boxes, frame_points, strict=True)):
            x1, y1 = max(float(box[0]), 0.0), max(float(box[1]), 0.0)
            x2, y2 = min(float(box[2]), float(w)), min(float(box[3]), float(h))
            if x2 <= x1 or y2 <= y1 or (x2 - x1) < min_px * 0.5:
                continue
            score = float(scores[keep[i]])
            out.append(
                Detection(bbox=(x1, y1, x2 - x1, y2 - y1), landmarks=pts.astype(np.float32), score=score)
            )
        out.sort(key=lambda d: -d.score)
        return out


@register_detector("yunet")
def _factory(card: ModelCard, settings: Settings) -> YunetDetector:
    refiner = None
    if settings.detector.yunet.landmarks == "onet":
        refiner = MtcnnDetector(find_card(settings.models_dir, settings.detector.yunet.onet_card), settings)
    return YunetDetector(card, settings, refiner)
