"""Face tracks for redaction: detections on scattered frames joined into one track per person.

Why a tracker of its own (not ingest's IoU tracker): redaction detects only on some frames, so a face may
move a whole face-width between two detections and boxes no longer overlap. Matching here is by centre
distance relative to the face size, against each track's position predicted from its last velocity, and a
track survives ``max_gap`` frames without a detection, so a face missed once (turned, blurred, passing
behind someone) stays one track and its gap is interpolated rather than left uncovered.

Track numbers are given in order of first detection, and the whole procedure is deterministic: a preview
run and the redaction run that follows it number the same faces the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

Box = tuple[float, float, float, float]  # x, y, width, height in pixels

# A detection matches a track when its centre lies within this many face widths of the prediction.
MATCH_DISTANCE = 1.0
# ... (this many times further for a track seen only once, whose velocity is not known yet)
UNMEASURED_SLACK = 1.5
# ... and the two sizes differ by less than this factor.
MAX_SIZE_RATIO = 2.0


@dataclass(frozen=True)
class Observation:
    frame: int
    box: Box
    score: float


@dataclass
class Track:
    track_id: int
    observations: list[Observation] = field(default_factory=list)
    thumbnail: np.ndarray | None = None  # BGR crop of the track's best view (only when a preview is wanted)
    thumbnail_rank: float = -1.0
    embeddings: list[np.ndarray] = field(default_factory=list)  # only when kept subjects are wanted
    # Frames covered beyond the first and last detection at least (0 = the plan's usual extension): a
    # face found only by a detector that runs seldom may have been there since just after its last run.
    reach: int = 0

    @property
    def first_frame(self) -> int:
        return self.observations[0].frame

    @property
    def last_frame(self) -> int:
        return self.observations[-1].frame

    def velocity(self) -> tuple[float, float]:
        """Centre motion per frame between the last two observations (0, 0 with one observation)."""
        if len(self.observations) < 2:
            return 0.0, 0.0
        a, b = self.observations[-2], self.observations[-1]
        (ax, ay), (bx, by) = centre(a.box), centre(b.box)
        dt = max(b.frame - a.frame, 1)
        return (bx - ax) / dt, (by - ay) / dt

    def predict(self, frame: int) -> Box:
        """Where the track's box is expected at ``frame``, moving at its last velocity."""
        last = self.observations[-1]
        vx, vy = self.velocity()
        dt = frame - last.frame
        x, y, w, h = last.box
        return x + vx * dt, y + vy * dt, w, h


def centre(box: Box) -> tuple[float, float]:
    x, y, w, h = box
    return x + w / 2.0, y + h / 2.0


def match_cost(a: Box, b: Box) -> float:
    """Centre distance in face widths; infinity when the sizes are too different to be one face."""
    wa, wb = max(a[2], a[3], 1.0), max(b[2], b[3], 1.0)
    if max(wa, wb) / min(wa, wb) >= MAX_SIZE_RATIO:
        return float("inf")
    (ax, ay), (bx, by) = centre(a), centre(b)
    return float(np.hypot(ax - bx, ay - by) / max(wa, wb))


def greedy_match(
    a: Sequence[Box], b: Sequence[Box], max_cost: float = MATCH_DISTANCE, slack: Sequence[float] | None = None
) -> list[tuple[int, int, float]]:
    """Pairs (i, j, cost) of ``a`` and ``b`` boxes, cheapest first, each box used once.

    ``slack[i]`` divides the cost of ``a[i]``'s pairs (a box whose prediction is less certain may match
    further away).
    """
    pairs = sorted(
        (c, i, j)
        for i, ba in enumerate(a)
        for j, bb in enumerate(b)
        if (c := match_cost(ba, bb) / (slack[i] if slack is not None else 1.0)) < max_cost
    )
    used_a: set[int] = set()
    used_b: set[int] = set()
    out: list[tuple[int, int, float]] = []
    for c, i, j in pairs:
        if i in used_a or j in used_b:
            continue
        used_a.add(i)
        used_b.add(j)
        out.append((i, j, c))
    return out


class Tracker:
    """Online: fed each detected frame in increasing frame order; returns the track of every detection."""

    def __init__(self, max_gap: int) -> None:
        self.max_gap = max_gap
        self.tracks: list[Track] = []
        self._last_frame = -1
        self._closed = 0  # tracks before this index ended at a shot cut

    def cut(self) -> None:
        """A shot cut: no face after it continues a track from before it, however close their places."""
        self._closed = len(self.tracks)

    def _live(self, frame: int) -> list[Track]:
        return [t for t in self.tracks[self._closed :] if frame - t.last_frame <= self.max_gap]

    def expected(self, frame: int) -> list[Box]:
        """Predicted boxes at ``frame`` of the tracks still alive there."""
        return [t.predict(frame) for t in self._live(frame)]

    def update(self, frame: int, boxes: Sequence[Box], scores: Sequence[float]) -> list[Track]:
        if frame <= self._last_frame:
            raise ValueError(f"frames must arrive in increasing order ({frame} after {self._last_frame})")
        self._last_frame = frame
        live = self._live(frame)
        predicted = [t.predict(frame) for t in live]
        # A track seen once has no velocity yet: its next position is less certain.
        slack = [1.0 if len(t.observations) > 1 else UNMEASURED_SLACK for t in live]
        owner: list[Track | None] = [None] * len(boxes)
        for i, j, _ in greedy_match(predicted, boxes, MATCH_DISTANCE, slack):
            owner[j] = live[i]
        for j, (box, score) in enumerate(zip(boxes, scores, strict=True)):
            track = owner[j]
            if track is None:
                track = Track(track_id=len(self.tracks) + 1)
                self.tracks.append(track)
                owner[j] = track
            x, y, w, h = (float(v) for v in box)
            track.observations.append(Observation(frame, (x, y, w, h), float(score)))
        return [t for t in owner if t is not None]
