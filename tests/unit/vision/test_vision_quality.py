"""Quality gate: each measure fails on its own, with a reason an operator can read."""

from __future__ import annotations

import cv2
import numpy as np

from lfr.core.config import QualitySettings
from lfr.vision.detectors.base import Detection
from lfr.vision.quality import assess, sharpness, yaw_ratio

FRONTAL = np.array([[40, 50], [80, 50], [60, 70], [45, 90], [75, 90]], np.float32)


def _chip(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (150, 150, 3), dtype=np.uint8)


def _det(width: float = 120.0, lm: np.ndarray = FRONTAL, score: float = 0.99) -> Detection:
    return Detection(bbox=(10.0, 10.0, width, width), landmarks=lm, score=score)


def test_good_face_passes() -> None:
    r = assess(_det(), _chip(), QualitySettings())
    assert r.passed and r.reasons == [] and 0.8 < r.score <= 1.0


def test_each_failure_has_its_reason() -> None:
    cfg = QualitySettings()
    small = assess(_det(width=30), _chip(), cfg)
    assert not small.passed and "too small" in small.reasons[0]
    blurred = assess(_det(), cv2.GaussianBlur(_chip(), (0, 0), 6), cfg)
    assert not blurred.passed and any("blurred" in r for r in blurred.reasons)
    turned = FRONTAL.copy()
    turned[2, 0] = 79  # nose tip near one eye: head turned
    yaw = assess(_det(lm=turned), _chip(), cfg)
    assert not yaw.passed and any("turned" in r for r in yaw.reasons)
    unsure = assess(_det(score=0.5), _chip(), cfg)
    assert not unsure.passed and any("detector" in r for r in unsure.reasons)


def test_yaw_ratio_ignores_roll() -> None:
    assert yaw_ratio(FRONTAL) == 0.0
    c, s = np.cos(0.6), np.sin(0.6)
    rolled = (FRONTAL - 60) @ np.array([[c, -s], [s, c]]).T + 60
    assert yaw_ratio(rolled) < 1e-6
    shifted = FRONTAL.copy()
    shifted[2, 0] += 10
    assert abs(yaw_ratio(shifted) - 0.25) < 1e-6


def test_score_ranks_better_shots_higher() -> None:
    cfg = QualitySettings()
    chip = _chip()
    best = assess(_det(width=150), chip, cfg).score
    smaller = assess(_det(width=60), chip, cfg).score
    blurrier = assess(_det(width=150), cv2.GaussianBlur(chip, (0, 0), 2), cfg).score
    assert best > smaller and best > blurrier
    assert sharpness(chip) > sharpness(cv2.GaussianBlur(chip, (0, 0), 2))
