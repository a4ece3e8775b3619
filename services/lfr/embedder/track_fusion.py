"""Per-track fused templates held in the embedder's memory while a person is passing a camera.

Why here: crops are keyed by camera on ``lfr.crops.v1``, so every crop of a track reaches the same embedder
process (a rebalance only restarts the fusion of the tracks it moves, which then fuse from their next crop).
Each crop is searched with the quality-weighted fusion of its track's crops so far (lfr.vision.fusion), so a
person's chance of a false alert does not grow with the number of crops their track yields.

A fallback crop (its face failed ingest's quality gate: ``FaceCrop.send_reason`` UNPASSED_*) is searched as
it comes while its track has nothing better, but once the track has a crop that passed, the fused template
leaves the fallbacks out: a face the gate refused is far weaker evidence (gate-failed faces match their own
person half as often: docs/accuracy.md, track coverage) and would pull a good view's template away from it.

Privacy: the vectors live in this process's memory only, never on disk, a topic or Redis, and a track is
forgotten ``ttl_s`` seconds after its last crop (default 30 s) or when ``max_tracks`` newer tracks push it
out; nothing is kept once the track is over. A redelivered crop (same crop id) is not counted twice.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from prometheus_client import Counter

from lfr.vision.fusion import continues, fuse

FUSION_RESTARTS = Counter(
    "lfr_embedder_fusion_restarts_total",
    "Track fusions started afresh: a crop did not look like its track's crops so far "
    "(embedder.track_fusion_min_similarity; the tracker may have followed another person)",
)

TrackKey = tuple[str, str, str]  # deployment id, camera id, track id


@dataclass
class _Track:
    vectors: list[np.ndarray] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)
    passed: list[bool] = field(default_factory=list)
    seen: deque[str] = field(default_factory=lambda: deque(maxlen=64))  # crop ids, for redelivery
    last_seen: float = 0.0

    def template(self, metric: str) -> tuple[np.ndarray, int]:
        """The fused template: of the passed crops, or of the fallbacks while none passed."""
        use = [i for i, p in enumerate(self.passed) if p] or list(range(len(self.passed)))
        vectors = np.stack([self.vectors[i] for i in use])
        weights = np.asarray([self.weights[i] for i in use], np.float32)
        return fuse(vectors, weights, metric), len(use)

    def restart(self) -> None:
        self.vectors.clear()
        self.weights.clear()
        self.passed.clear()


class TrackFusion:
    def __init__(
        self,
        metric: str,
        ttl_s: float = 30.0,
        max_tracks: int = 20_000,
        max_crops: int = 8,
        clock: Callable[[], float] = time.monotonic,
        min_similarity: float | None = None,
    ) -> None:
        if max_crops < 1 or max_tracks < 1:
            raise ValueError("max_crops and max_tracks must be at least 1")
        self.metric = metric
        self.ttl_s = ttl_s
        self.max_tracks = max_tracks
        self.max_crops = max_crops
        self.min_similarity = min_similarity
        self.restarts = 0  # fusions started afresh because a crop did not look like its track
        self._clock = clock
        self._tracks: OrderedDict[TrackKey, _Track] = OrderedDict()

    def __len__(self) -> int:
        return len(self._tracks)

    def _expire(self, now: float) -> None:
        while self._tracks:
            key, track = next(iter(self._tracks.items()))
            if now - track.last_seen <= self.ttl_s and len(self._tracks) <= self.max_tracks:
                break
            del self._tracks[key]

    def update(
        self, key: TrackKey, crop_id: str, vector: np.ndarray, weight: float, passed: bool = True
    ) -> tuple[np.ndarray, int]:
        """Add one crop (once per crop id) and return the track's fused template and how many crops it fuses.

        A crop without a track id is its own track. ``passed``: the crop's face passed ingest's quality
        gate; fallbacks are fused only while the track has no passed crop. A passed crop that does not look
        like the track's passed crops so far (``min_similarity``) starts the fusion afresh from itself. When
        a track holds ``max_crops`` crops, the weakest (a fallback first, then the lowest weight) makes room
        for a better one (a long track keeps its best views).
        """
        now = self._clock()
        if not key[2]:
            return fuse(vector[None], np.array([weight], np.float32), self.metric), 1
        track = self._tracks.pop(key, None) or _Track()
        track.last_seen = now
        if crop_id not in track.seen:
            track.seen.append(crop_id)
            if passed and any(track.passed):
                template, _ = track.template(self.metric)
                if not continues(template, vector, self.min_similarity, self.metric):
                    track.restart()
                    self.restarts += 1
                    FUSION_RESTARTS.inc()
            self._add(track, np.asarray(vector, np.float32), float(weight), passed)
        self._tracks[key] = track  # most recently seen last
        self._expire(now)
        return track.template(self.metric)

    def _add(self, track: _Track, vector: np.ndarray, weight: float, passed: bool) -> None:
        rank = (passed, weight)
        if len(track.vectors) >= self.max_crops:
            ranks = list(zip(track.passed, track.weights, strict=True))
            worst = min(range(len(ranks)), key=ranks.__getitem__)
            if rank <= ranks[worst]:
                return
            del track.vectors[worst], track.weights[worst], track.passed[worst]
        track.vectors.append(vector)
        track.weights.append(weight)
        track.passed.append(passed)

    def clear(self) -> None:
        """Forget every track (on shutdown or partition revocation)."""
        self._tracks.clear()
