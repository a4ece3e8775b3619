"""Which frames the detector sees: a fixed stride, and every frame in between where the stride is not safe.

Why adaptive: full-frame detection down to 20 px faces is the dominant cost (about 200 ms for a 1080p
frame on one core), so it cannot run on every frame; but between two detected frames only linear motion
is covered for sure. Where the two frames disagree (a face in one and not the other: entering, leaving,
passing behind someone, briefly missed) or a face moved fast, the midpoint is detected as well, recursively,
down to adjacent frames. Steady scenes cost one detection per stride; busy stretches cost more.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from lfr.redact.tracks import MATCH_DISTANCE, Box, greedy_match

# A face that moved more than this many face widths between two detected frames is "fast": its path
# between them is looked at rather than assumed straight.
FAST_MOTION = 0.5


class HasBox(Protocol):
    @property
    def bbox(self) -> Box: ...

    @property
    def score(self) -> float: ...


D = TypeVar("D", bound=HasBox)


def detection_stride(fps: float, interval_s: float) -> int:
    """Frames between scheduled detections (at least 1) for footage at ``fps``."""
    return max(1, int(fps * interval_s + 1e-9))


def needs_detail(a: Sequence[Box], b: Sequence[Box], known: Sequence[Box] = ()) -> bool:
    """True when straight-line interpolation between two detected frames could miss a face.

    That is when a face in ``b`` is new (it matches nothing in ``a`` nor any ``known`` box: the predicted
    places of faces tracked but missed in ``a``), or a face moved fast from ``a`` to ``b``. A face in ``a``
    that is gone in ``b`` needs nothing more: the hold covers it, moving at its measured velocity.
    """
    pairs = greedy_match(a, b, MATCH_DISTANCE)
    if any(cost > FAST_MOTION for _, _, cost in pairs):
        return True
    matched = {j for _, j, _ in pairs}
    rest = [box for j, box in enumerate(b) if j not in matched]
    return len(greedy_match(known, rest, MATCH_DISTANCE)) < len(rest)


def refine(
    first: int,
    last: int,
    found: dict[int, list[D]],
    detect_at: Callable[[int], list[D]],
    min_score: float = 0.0,
    known: Sequence[Box] = (),
) -> None:
    """Detect midpoints between ``first`` and ``last`` (both already in ``found``) until each pair of
    neighbouring detected frames agrees or is adjacent.

    Only detections scoring ``min_score`` or more decide: at redaction's low thresholds the background
    yields one-frame blobs that would otherwise send every stretch to per-frame detection. The blobs are
    still covered (with the usual hold); they just do not buy extra detections.
    """
    if last - first <= 1:
        return

    def boxes(frame: int) -> list[Box]:
        return [d.bbox for d in found[frame] if d.score >= min_score]

    if not needs_detail(boxes(first), boxes(last), known):
        return
    mid = (first + last) // 2
    found[mid] = detect_at(mid)
    refine(first, mid, found, detect_at, min_score)
    refine(mid, last, found, detect_at, min_score, known)
