"""The detector interface every backend implements, and the errors they raise.

Why a protocol: the ingest worker, the API and the enrolment path only need boxes, five landmarks and a
score; which network produced them is a model-card choice (Frigate-style plug-ins, one file per backend).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


class ImageTooLargeError(ValueError):
    """The frame has more pixels than DetectorSettings.max_image_pixels allows (refused, not processed)."""


class BadImageError(ValueError):
    """The input is not an 8-bit BGR (or grey) image array."""


@dataclass(frozen=True)
class Detection:
    """One face in frame pixels.

    ``bbox`` is (x, y, w, h); ``landmarks`` is float32 (5, 2) in :data:`LANDMARK_NAMES` order, where "left"
    means image-left (the subject's right eye for a frontal face), as MTCNN reports them.
    """

    bbox: tuple[float, float, float, float]
    landmarks: np.ndarray
    score: float

    @property
    def width(self) -> float:
        return self.bbox[2]

    @property
    def xyxy(self) -> tuple[float, float, float, float]:
        x, y, w, h = self.bbox
        return x, y, x + w, y + h


@runtime_checkable
class Detector(Protocol):
    model_id: str
    landmark_scheme: str

    def detect(self, image_bgr: np.ndarray) -> list[Detection]: ...


def check_image(image: np.ndarray, max_pixels: int) -> np.ndarray:
    """Validate and normalise a frame to contiguous uint8 HxWx3 BGR; refuse oversized frames early."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise BadImageError("expected a uint8 numpy image (OpenCV BGR)")
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise BadImageError(f"expected an HxWx3 BGR image, got shape {image.shape}")
    h, w = image.shape[:2]
    if h * w > max_pixels:
        raise ImageTooLargeError(
            f"image of {w}x{h} = {w * h} pixels exceeds detector.max_image_pixels={max_pixels}"
        )
    if image.shape[2] == 4:
        image = image[:, :, :3]
    return np.ascontiguousarray(image)
