"""Face quality gate and best-shot score.

Why gate before embedding: a blurred, tiny or turned face gives an embedding that sits closer to everyone,
which raises false alerts; and for enrolment a poor watchlist image poisons every later comparison. The gate
uses cheap, explainable measures an operator can understand from the reason strings:

* face size: detector box width in frame pixels (QualitySettings.min_face_px);
* sharpness: variance of the Laplacian of the grey chip (the chip has a fixed size, so values compare
  across faces of different sizes; an upscaled small face scores low, which is intended);
* pose: yaw ratio = horizontal offset of the nose tip from the eye midpoint, measured along the eye axis
  (so head roll does not count), divided by the eye distance: 0 frontal, about 0.5 near profile;
* detector confidence.

The combined ``score`` (0..1) ranks shots of one track for best-shot selection; it is not a probability.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from lfr.core.config import QualitySettings
from lfr.vision.detectors.base import Detection

# Weights of the best-shot score; pose and size matter most for recognition, sharpness next.
W_SIZE, W_SHARP, W_POSE, W_DET = 0.3, 0.25, 0.3, 0.15


@dataclass(frozen=True)
class QualityReport:
    passed: bool
    reasons: list[str] = field(default_factory=list)
    score: float = 0.0
    face_px: float = 0.0
    sharpness: float = 0.0
    yaw_ratio: float = 0.0
    detector_score: float = 0.0


def sharpness(chip_bgr: np.ndarray) -> float:
    """Variance of the Laplacian of the grey chip: high for crisp edges, low for blur or upscaling."""
    grey = cv2.cvtColor(chip_bgr, cv2.COLOR_BGR2GRAY) if chip_bgr.ndim == 3 else chip_bgr
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def yaw_ratio(landmarks: np.ndarray) -> float:
    """|nose offset from the eye midpoint along the eye axis| / eye distance (roll-invariant)."""
    pts = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    left, right, nose = pts[0], pts[1], pts[2]
    axis = right - left
    dist = float(np.hypot(*axis))
    if dist < 1e-6:
        return 1.0
    mid = (left + right) / 2.0
    return float(abs(np.dot(nose - mid, axis / dist)) / dist)


def for_detector(cfg: QualitySettings, detector: object) -> QualitySettings:
    """``cfg`` with the detector card's confident score filled in where the settings leave it open."""
    card = getattr(detector, "card", None)
    return cfg.for_detector(getattr(card, "confident_score", None))


def gate_reasons(
    face_px: float,
    sharp: float,
    yaw: float,
    det: float,
    cfg: QualitySettings,
    number: Callable[[float], float | np.floating[Any]] = float,
) -> list[str]:
    """Why a face with these measures fails the gate (empty when it passes).

    ``number`` is the type both sides are compared in: a crop record carries its measures as float32, so
    a reader judging a crop from the record compares in float32 (lfr.ingest.crops.passed_gate) and reaches
    the verdict ``assess`` reached on the unrounded values.
    """
    n = number
    reasons: list[str] = []
    if n(face_px) < n(cfg.min_face_px):
        reasons.append(f"face too small: {face_px:.0f} px wide < {cfg.min_face_px} px")
    if n(sharp) < n(cfg.min_sharpness):
        reasons.append(f"face too blurred: sharpness {sharp:.1f} < {cfg.min_sharpness:g}")
    if n(yaw) > n(cfg.max_yaw_ratio):
        reasons.append(f"face turned too far: yaw ratio {yaw:.2f} > {cfg.max_yaw_ratio:g}")
    if n(det) < n(cfg.detector_floor):
        reasons.append(f"detector unsure: score {det:.2f} < {cfg.detector_floor:g}")
    return reasons


def assess(detection: Detection, chip_bgr: np.ndarray, cfg: QualitySettings) -> QualityReport:
    """Measure one face and decide whether it is good enough to embed or enrol."""
    face_px = float(detection.bbox[2])
    sharp = sharpness(chip_bgr)
    yaw = yaw_ratio(detection.landmarks)
    det = float(detection.score)
    reasons = gate_reasons(face_px, sharp, yaw, det, cfg)
    size_term = float(np.clip(face_px / (3.0 * cfg.min_face_px), 0.0, 1.0))
    sharp_term = float(np.clip(np.log1p(sharp) / np.log1p(10.0 * max(cfg.min_sharpness, 1.0)), 0.0, 1.0))
    pose_term = float(np.clip(1.0 - yaw / max(2.0 * cfg.max_yaw_ratio, 1e-6), 0.0, 1.0))
    score = W_SIZE * size_term + W_SHARP * sharp_term + W_POSE * pose_term + W_DET * float(np.clip(det, 0, 1))
    return QualityReport(
        passed=not reasons,
        reasons=reasons,
        score=float(np.clip(score, 0.0, 1.0)),
        face_px=face_px,
        sharpness=sharp,
        yaw_ratio=yaw,
        detector_score=det,
    )
