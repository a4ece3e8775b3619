"""Fit a chip template for one detector's landmarks that reproduces the chips another detector's landmarks
make with a known template (a development tool, like :mod:`lfr.modelbuild.calibrate`).

Why: YuNet and MTCNN both report eye centres, nose tip and mouth corners, but not at the same places on a
face (YuNet's eyes sit about 1.5 px lower and its mouth corners about 2.5 px higher in a 112 px ArcFace chip).
An embedder's template was made for one detector's points; aligning the other's points to it zooms and
shifts every chip a little, which costs accuracy. For each calibration face found by both detectors, the
reference detector's points are aligned to the reference template, the other detector's points are mapped
through the same transform, and the template is their mean, symmetrised about the reference template's axis
(a mirrored face then gives a mirrored chip).

Run: ``python -m lfr.modelbuild.calibrate_landmarks <image or dir>...``; the calibration faces must not be the
faces used for evaluation (the defaults in templates.py name theirs).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from lfr.core.images import read_image
from lfr.modelbuild.calibrate import iter_images
from lfr.vision.align import similarity_transform, transform_points
from lfr.vision.boxes import iou_matrix
from lfr.vision.detectors.base import Detector
from lfr.vision.templates import Template5

MIN_FACE = 40
MIN_IOU = 0.5


def symmetrise(points: np.ndarray, axis_x: float) -> Template5:
    """Average each left/right pair with its mirror about ``x = axis_x`` (eyes 0/1, mouth 3/4); nose on it."""
    p = np.asarray(points, dtype=np.float64).reshape(5, 2)
    out = p.copy()
    for a, b in ((0, 1), (3, 4)):
        half = ((axis_x - p[a, 0]) + (p[b, 0] - axis_x)) / 2.0
        y = (p[a, 1] + p[b, 1]) / 2.0
        out[a] = (axis_x - half, y)
        out[b] = (axis_x + half, y)
    out[2] = (axis_x, p[2, 1])
    return tuple((round(float(x), 3), round(float(y), 3)) for x, y in out)  # type: ignore[return-value]


def collect(
    images: Iterable[np.ndarray], reference: Detector, other: Detector, template: Sequence
) -> np.ndarray:
    """The other detector's landmarks in the reference's chips, one (5, 2) row per face both found."""
    t = np.asarray(template, dtype=np.float64)
    rows = []
    for img in images:
        ref = [d for d in reference.detect(img) if d.bbox[2] >= MIN_FACE]
        oth = [d for d in other.detect(img) if d.bbox[2] >= MIN_FACE]
        if not ref or not oth:
            continue
        iou = iou_matrix(np.array([d.xyxy for d in ref]), np.array([d.xyxy for d in oth]))
        for i, d in enumerate(ref):
            j = int(np.argmax(iou[i]))
            if iou[i, j] < MIN_IOU:
                continue
            m = similarity_transform(d.landmarks, t)
            rows.append(transform_points(m, oth[j].landmarks))
    return np.asarray(rows, dtype=np.float64).reshape(-1, 5, 2)


def main(argv: list[str]) -> int:
    from lfr.core.config import Settings
    from lfr.vision.cards import find_card
    from lfr.vision.detectors import create_detector
    from lfr.vision.templates import ARCFACE_112, MTCNN5_DLIB_CHIP

    if not argv:
        print(__doc__)
        return 2
    settings = Settings()
    reference = create_detector(find_card(settings.models_dir, "mtcnn"), settings)
    other = create_detector(find_card(settings.models_dir, "yunet"), settings)
    images = [img for p in iter_images(Path(a) for a in argv) if (img := read_image(p)) is not None]
    out = {}
    for name, template, axis in (
        ("arcface_112", ARCFACE_112, (ARCFACE_112[0][0] + ARCFACE_112[1][0]) / 2.0),
        ("dlib_chip", MTCNN5_DLIB_CHIP, MTCNN5_DLIB_CHIP[2][0]),
    ):
        pts = collect(images, reference, other, template)
        out[name] = {
            "faces": len(pts),
            "raw_mean": np.round(pts.mean(axis=0), 3).tolist(),
            "sd": np.round(pts.std(axis=0), 3).tolist(),
            "template": symmetrise(pts.mean(axis=0), axis),
        }
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
