"""Verification and detection measurements on labelled data (used by tests, calibration and the benchmark).

Why in the package rather than only in tests: the figures recorded in a model card's calibration must be
reproducible by anyone with the same data, with the same preprocessing, through the same code path the
services use (FaceAnalyzer), and ``lfr bench models`` reports some of them.

Preprocessing is part of every figure: images whose longer side exceeds ``max_side`` are shrunk first
(INTER_AREA) because enrolment-style photos of 4000+ px hold faces far larger than the chip, and the
largest detected face is the one compared (the label is the main face).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from lfr.core import images
from lfr.core.config import Settings
from lfr.evaluation.datasets import Pair
from lfr.vision.boxes import iou_matrix, xywh_to_xyxy
from lfr.vision.detectors.base import Detector
from lfr.vision.pipeline import FaceAnalyzer


@dataclass(frozen=True)
class VerificationResult:
    pairs: int
    skipped: int
    accuracy: float
    tar: float
    far: float
    genuine_mean: float
    impostor_mean: float
    fell_back: int

    def figures(self) -> dict[str, float]:
        return {
            "accuracy": round(self.accuracy, 4),
            "tar": round(self.tar, 4),
            "far": round(self.far, 4),
            "pairs": float(self.pairs),
            "skipped": float(self.skipped),
        }


def read_image(path: Path, max_side: int | None) -> np.ndarray:
    img = images.read_image(path, max_side)
    if img is None:
        raise FileNotFoundError(f"cannot read image {path}")
    return img


def embed_images(
    analyzer: FaceAnalyzer, root: Path, names: Sequence[str], pad_tight: bool, max_side: int | None
) -> dict[str, tuple[np.ndarray, bool] | None]:
    """Embedding of the largest face of each image (None when no face), and whether it fell back."""
    out: dict[str, tuple[np.ndarray, bool] | None] = {}
    for name in names:
        faces = analyzer.analyse(read_image(root / name, max_side), pad_tight=pad_tight)
        out[name] = (faces[0].embedding, faces[0].fell_back) if faces else None
    return out


def verify_pairs(
    analyzer: FaceAnalyzer,
    root: Path,
    pairs: Sequence[Pair],
    threshold: float | None = None,
    pad_tight: bool = False,
    max_side: int | None = 1600,
) -> VerificationResult:
    """Accuracy, TAR and FAR at the card threshold (or ``threshold``) over pairs with a face in both."""
    card = analyzer.embedder.card
    names = sorted({p.a for p in pairs} | {p.b for p in pairs})
    emb = embed_images(analyzer, root, names, pad_tight, max_side)
    same: list[bool] = []
    match: list[bool] = []
    gen: list[float] = []
    imp: list[float] = []
    skipped = 0
    fell = sum(1 for v in emb.values() if v is not None and v[1])
    for p in pairs:
        ea, eb = emb[p.a], emb[p.b]
        if ea is None or eb is None:
            skipped += 1
            continue
        d = float(card.distance(ea[0], eb[0]))
        same.append(p.same)
        match.append(card.is_match(d, threshold))
        (gen if p.same else imp).append(d)
    s, m = np.asarray(same, bool), np.asarray(match, bool)
    n = len(s)
    return VerificationResult(
        pairs=n,
        skipped=skipped,
        accuracy=float((s == m).mean()) if n else 0.0,
        tar=float(m[s].mean()) if s.any() else 0.0,
        far=float(m[~s].mean()) if (~s).any() else 0.0,
        genuine_mean=float(np.mean(gen)) if gen else 0.0,
        impostor_mean=float(np.mean(imp)) if imp else 0.0,
        fell_back=fell,
    )


@dataclass(frozen=True)
class LabelledFrame:
    frame: int
    boxes: np.ndarray  # (n, 4) x, y, w, h


def load_frame_labels(path: Path) -> tuple[str, list[LabelledFrame]]:
    data = json.loads(Path(path).read_text())
    frames = [
        LabelledFrame(
            int(f["frame"]), np.asarray([b["bbox"] for b in f["faces"]], dtype=np.float64).reshape(-1, 4)
        )
        for f in data["frames"]
    ]
    return str(data["video"]), frames


def load_photo_labels(path: Path, faces_dir: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """(BGR image, x,y,w,h boxes) per labelled photo, without faces cut by the image edge (approximate)."""
    data = json.loads(Path(path).read_text())
    out: list[tuple[np.ndarray, np.ndarray]] = []
    for item in data["images"]:
        img = images.read_image(Path(faces_dir) / item["image"])
        if img is None:
            raise FileNotFoundError(f"labelled photo {item['image']} is missing or unreadable")
        boxes = [f["bbox"] for f in item["faces"] if not f.get("truncated")]
        out.append((img, np.asarray(boxes, dtype=np.float64).reshape(-1, 4)))
    return out


def small_face_canvases(
    photos: Sequence[tuple[np.ndarray, np.ndarray]],
    face_px: Sequence[float] = (44.0, 56.0, 72.0),
    size: tuple[int, int] = (1920, 1080),
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Labelled photos shrunk so their median face is ``face_px`` wide, each pasted on a grey 1080p canvas.

    Why: the street video's 29 labelled faces are what detector settings are tuned on; a check of the same
    settings needs faces the tuning never saw, at the small sizes where the finest pyramid levels decide,
    in a frame as large as a camera's. Photos whose faces would have to be enlarged are skipped; faces that
    leave the canvas are dropped from the labels.
    """
    width, height = size
    left, top = 200, 100  # where each photo is pasted
    images: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    for target in face_px:
        for img, boxes in photos:
            if not len(boxes):
                continue
            k = float(target) / float(np.median(boxes[:, 2]))
            if k > 1.0:
                continue
            small = cv2.resize(img, None, fx=k, fy=k, interpolation=cv2.INTER_AREA)
            h, w = min(small.shape[0], height - top), min(small.shape[1], width - left)
            canvas = np.full((height, width, 3), 110, dtype=np.uint8)
            canvas[top : top + h, left : left + w] = small[:h, :w]
            moved = boxes * k + np.array([left, top, 0.0, 0.0])
            inside = (moved[:, 0] + moved[:, 2] <= left + w) & (moved[:, 1] + moved[:, 3] <= top + h)
            images.append(canvas)
            labels.append(moved[inside])
    return images, labels


def iter_frames(video: Path) -> Iterator[tuple[int, np.ndarray]]:
    """(index, BGR frame) for every frame of ``video``, one in memory at a time."""
    cap = cv2.VideoCapture(str(video))
    try:
        i = 0
        while True:
            ok, frame = cap.read()
            if not ok:
                return
            yield i, frame
            i += 1
    finally:
        cap.release()


def read_frames(video: Path, indices: Sequence[int]) -> dict[int, np.ndarray]:
    wanted = set(indices)
    out: dict[int, np.ndarray] = {}
    if not wanted:
        return out
    for i, frame in iter_frames(video):
        if i in wanted:
            out[i] = frame
            if len(out) == len(wanted):
                break
    return out


def detection_recall(
    detector: Detector,
    images: Sequence[np.ndarray],
    labels: Sequence[np.ndarray],
    min_width: float,
    iou: float = 0.5,
) -> tuple[int, int]:
    """(found, total) over labelled x,y,w,h boxes at least ``min_width`` wide, matched at IoU >= ``iou``."""
    found = total = 0
    for img, gt in zip(images, labels, strict=True):
        gt = gt[gt[:, 2] >= min_width]
        if not len(gt):
            continue
        dets = detector.detect(img)
        total += len(gt)
        if not dets:
            continue
        pred = np.asarray([d.xyxy for d in dets])
        g = xywh_to_xyxy(gt)
        m = iou_matrix(g, pred)
        # Greedy one-to-one matching, best overlaps first.
        used_g, used_p = set(), set()
        for gi, pi in sorted(np.argwhere(m >= iou).tolist(), key=lambda ij: -m[ij[0], ij[1]]):
            if gi not in used_g and pi not in used_p:
                used_g.add(gi)
                used_p.add(pi)
        found += len(used_g)
    return found, total


def reference_cascade(settings: Settings) -> Settings:
    """``settings`` with the detector's reference cascade: one P-Net threshold on every pyramid level."""
    detector = settings.detector.model_copy(update={"first_level_thresholds": ()})
    return settings.model_copy(update={"detector": detector})


def reference_agreement(
    detector: Detector, reference: Detector, images: Iterable[np.ndarray], min_width: float = 40.0
) -> tuple[int, int]:
    """(kept, total): the reference cascade's faces at least ``min_width`` wide that ``detector`` also finds.

    Why: a setting that only prunes candidates (a stricter threshold on some pyramid levels) should find
    what the reference cascade finds; measured on frames nobody labelled, it checks the setting on far more
    faces than the hand-labelled ones it was tuned on. A reference detection may be a false alarm, so this
    bounds what the change loses, not the detector's recall. ``images`` may be a generator (video frames
    are compared one at a time, not held in memory).
    """
    kept = total = 0
    for img in images:
        boxes = np.asarray([d.bbox for d in reference.detect(img)], dtype=np.float64).reshape(-1, 4)
        k, t = detection_recall(detector, [img], [boxes], min_width=min_width)
        kept, total = kept + k, total + t
    return kept, total
