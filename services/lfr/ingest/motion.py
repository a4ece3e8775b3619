"""Optional motion gating: skip detection on analysed frames of a fixed camera where nothing has changed.

Why it is off by default: it only pays on fixed cameras watching scenes that are often empty (a corridor
at night, a side entrance), and it must never cost a face. The street benchmark video comes from a moving
camera, where almost every analysed frame differs from the last and the gate saves nothing (measured in
services/lfr/ingest/README.md).

How it stays safe:

* detection is skipped only when the change since the *last frame that was detected* (not since the
  previous analysed frame) is below ``ingest.motion_min_changed_fraction``, so slow movement accumulates
  until it counts;
* never while the camera has a live face track: a person standing still in front of the camera keeps
  being analysed, so best-shot selection and track ends work as without the gate;
* never for longer than ``ingest.motion_max_skip_s``: a full detection runs at least that often, whatever
  the pixels say (a face can enter a scene whose change is below the threshold only if it is tiny and
  alone);
* the comparison is made on a small blurred grey copy (``WIDTH`` px wide), where sensor noise and
  compression artefacts fall below ``PIXEL_DELTA`` grey levels and a 40 px face at 1080p still covers
  dozens of pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

WIDTH = 320  # px of the comparison copy; a 40 px face in a 1920 px frame is about 7 px wide here
PIXEL_DELTA = 20  # grey levels a comparison pixel must change by to count as changed
BLUR = (5, 5)


def small_grey(image: np.ndarray) -> np.ndarray:
    """The comparison copy: grey, WIDTH px wide (aspect kept), blurred against noise."""
    h, w = image.shape[:2]
    height = max(1, round(h * WIDTH / max(w, 1)))
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    return cv2.GaussianBlur(cv2.resize(grey, (WIDTH, height), interpolation=cv2.INTER_AREA), BLUR, 0)


def changed_fraction(a: np.ndarray, b: np.ndarray) -> float:
    """Share of comparison pixels that differ by more than PIXEL_DELTA grey levels (1.0 on a size change)."""
    if a.shape != b.shape:
        return 1.0
    return float(np.count_nonzero(cv2.absdiff(a, b) > PIXEL_DELTA)) / a.size


@dataclass
class GateDecision:
    detect: bool
    reason: str  # disabled, first_frame, tracks_active, max_skip, motion, still
    changed: float | None = None


class MotionGate:
    """Per-camera gate state: the comparison copy of the last detected frame and when it was taken."""

    def __init__(self, min_changed_fraction: float, max_skip_s: float, enabled: bool = True) -> None:
        self.min_changed_fraction = min_changed_fraction
        self.max_skip_s = max_skip_s
        self.enabled = enabled
        self._reference: np.ndarray | None = None
        self._reference_t = 0.0

    def decide(self, image: np.ndarray, t: float, active_tracks: int) -> GateDecision:
        """Whether to run detection on this frame (at stream time ``t``); remembers it when detecting."""
        if not self.enabled:
            return GateDecision(True, "disabled")
        small = small_grey(image)
        if self._reference is None:
            return self._detect(small, t, "first_frame")
        changed = changed_fraction(small, self._reference)
        if active_tracks > 0:
            return self._detect(small, t, "tracks_active", changed)
        if t - self._reference_t >= self.max_skip_s:
            return self._detect(small, t, "max_skip", changed)
        if changed >= self.min_changed_fraction:
            return self._detect(small, t, "motion", changed)
        return GateDecision(False, "still", changed)

    def _detect(self, small: np.ndarray, t: float, reason: str, changed: float | None = None) -> GateDecision:
        self._reference, self._reference_t = small, t
        return GateDecision(True, reason, changed)
