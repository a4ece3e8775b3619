"""What enrolment would make of a photo, saving nothing: the faces found, their quality and the verdict.

A watchlist administrator sees this before enrolling, so a photo that would be refused (no face, two
people, blurred, turned away) is replaced before it reaches the watchlist, and one that passes shows the
face the system will search for. The checks are the enrolment checks themselves (``prepare``'s decoding
limits, ``FaceAnalyzer.enrol``'s verdict): a preview that passes is a photo enrolment accepts.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lfr.core.config import Settings
from lfr.watchlist.enrol.photos import (
    EnrolmentRejected,
    FaceEnroller,
    RejectCode,
    decode_checked,
    make_thumbnail,
    reduce,
    vision_errors,
)


@dataclass(frozen=True)
class FaceFound:
    """One detected face: where it is (in the reduced photo's pixels), how good it is, and its chip."""

    box: tuple[float, float, float, float]
    detector_score: float
    passed: bool
    reasons: list[str]
    quality_score: float
    face_px: float
    sharpness: float
    yaw_ratio: float
    chip_jpeg_b64: str


@dataclass(frozen=True)
class Preview:
    accepted: bool
    code: str  # "" when accepted, else the RejectCode enrolment would give
    verdict: str  # why, in words an administrator can act on
    width: int
    height: int
    faces: list[FaceFound] = field(default_factory=list)


def _faces(analyzer: FaceEnroller, image: np.ndarray) -> list[FaceFound]:
    analyse = getattr(analyzer, "analyse", None)
    if analyse is None:  # an enroller without a full analysis (tests' stand-ins): no per-face details
        return []
    out = []
    for f in analyse(image):
        q: Any = f.quality
        x, y, w, h = (float(v) for v in f.detection.bbox)
        out.append(
            FaceFound(
                (x, y, w, h),
                float(f.detection.score),
                bool(q.passed),
                list(q.reasons),
                float(q.score),
                float(q.face_px),
                float(q.sharpness),
                float(q.yaw_ratio),
                make_thumbnail(f.chip),
            )
        )
    return out


def preview(
    analyzer: FaceEnroller, data: bytes, settings: Settings, lock: threading.Lock | None = None
) -> Preview:
    """The enrolment verdict for ``data`` and every face found (CPU-bound: run it in a worker thread).

    Undecodable or oversized input raises EnrolmentRejected, as enrolment does, before any analysis.
    """
    image = reduce(decode_checked(data, settings.api.max_upload_bytes, settings.detector.max_image_pixels))
    h, w = image.shape[:2]
    guard = lock or threading.Lock()
    with guard:
        faces = _faces(analyzer, image)
        try:
            analyzer.enrol(image)
        except ValueError as exc:
            code = next((c for cls, c in vision_errors() if isinstance(exc, cls)), RejectCode.INVALID)
            return Preview(False, str(code), str(exc), w, h, faces)
    return Preview(True, "", "one clear face of sufficient quality: it can be enrolled", w, h, faces)


__all__ = ["EnrolmentRejected", "FaceFound", "Preview", "preview"]
