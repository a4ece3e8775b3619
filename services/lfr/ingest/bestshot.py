"""Best-shot selection: which faces of a track are worth sending to the embedder.

Why: embedding and watchlist search cost far more than detection per face, and a person is seen in many
frames. Sending one good crop per track as soon as it exists keeps alerts fast; sending a later crop only
when its quality is clearly better (by ``margin``) gives the matcher a second chance on a sharper or more
frontal face; the per-track cap and the minimum interval bound the load by the number of people, not the
number of frames.

A better face that arrives too soon after the last send is held (only the best held face per track) and
sent once the interval has passed, so a brief frontal glance between two sends is not lost.

A person who stays in view and keeps passing the gate rarely yields a face that beats the first by the
margin (the quality score saturates near its top), yet the embedder's track fusion finds far more people
from several views than from one (docs/accuracy.md, track fusion). So with ``refresh_s`` set, a track that
has sent keeps its best face since that send as a refresh candidate and sends it when the track offers a
face ``refresh_s`` or more after that send: a steady track sends up to ``max_per_track`` views spread over
its life, while a track that is gone or unseen (a person who walked out of view) sends no refresh: a brief
track still sends one crop.

Only faces that passed the quality gate are offered here; a crop the pipeline sends for a track without such
a face (its best unpassed face, :meth:`BestShotSelector.note_sent`) still counts against the per-track cap,
so the cap bounds every crop of a track, whatever the reason it was sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, NamedTuple, TypeVar

T = TypeVar("T")


class Outcome(StrEnum):
    SENT = "sent"
    HELD = "too_soon"  # better, but inside the minimum interval: kept as the track's pending shot
    NOT_BETTER = "not_better"
    TRACK_LIMIT = "track_limit"


class Release(NamedTuple, Generic[T]):
    """A face to send now; ``refresh``: a steady track's later view, not a better face (``refresh_s``)."""

    payload: T
    refresh: bool = False


@dataclass
class _Pending(Generic[T]):
    quality: float
    payload: T
    refresh: bool = False  # not better by the margin: due after refresh_s, not min_interval_s


@dataclass
class _TrackShots(Generic[T]):
    sent: int = 0
    last_sent_s: float = float("-inf")
    best_sent: float = float("-inf")
    pending: _Pending[T] | None = None


class BestShotSelector(Generic[T]):
    """Per-track send decisions; ``T`` is whatever the caller needs to build the crop later."""

    def __init__(
        self, margin: float, max_per_track: int, min_interval_s: float, refresh_s: float | None = None
    ) -> None:
        if max_per_track < 1:
            raise ValueError("max_per_track must be at least 1")
        if refresh_s is not None and refresh_s < min_interval_s:
            raise ValueError("refresh_s must be at least min_interval_s")
        self.margin = margin
        self.max_per_track = max_per_track
        self.min_interval_s = min_interval_s
        self.refresh_s = refresh_s
        self.refreshed = 0  # refresh sends so far (crops a steady track sent without a better face)
        self._tracks: dict[str, _TrackShots[T]] = {}

    @staticmethod
    def _record(st: _TrackShots[T], t: float, quality: float) -> None:
        st.sent += 1
        st.last_sent_s = t
        st.best_sent = max(st.best_sent, quality)
        st.pending = None

    def offer(self, track_id: str, t: float, quality: float, payload: T) -> tuple[Outcome, list[Release[T]]]:
        """Decide about one face of ``track_id`` seen at stream time ``t``; return what to send now."""
        st = self._tracks.setdefault(track_id, _TrackShots())
        if st.sent >= self.max_per_track:
            return Outcome.TRACK_LIMIT, []
        if st.sent == 0:
            self._record(st, t, quality)
            return Outcome.SENT, [Release(payload)]
        if quality < st.best_sent + self.margin:
            # Not better than what was sent: a refresh candidate at most (the newest of equals, so the view
            # is fresh); a pending shot may be due.
            if self.refresh_s is not None and (
                st.pending is None or (st.pending.refresh and quality >= st.pending.quality)
            ):
                st.pending = _Pending(quality, payload, refresh=True)
            return Outcome.NOT_BETTER, self._release_pending(st, t, seen=True)
        if t - st.last_sent_s >= self.min_interval_s:
            if st.pending is not None and st.pending.quality > quality:
                out = self._release_pending(st, t, seen=True)
                return Outcome.NOT_BETTER, out
            self._record(st, t, quality)
            return Outcome.SENT, [Release(payload)]
        if st.pending is None or quality > st.pending.quality:
            st.pending = _Pending(quality, payload)
        return Outcome.HELD, []

    def sent(self, track_id: str) -> int:
        """Crops counted for ``track_id`` so far (0 for a track never offered or noted)."""
        st = self._tracks.get(track_id)
        return 0 if st is None else st.sent

    def note_sent(self, track_id: str) -> None:
        """Count a crop the caller sent for ``track_id`` outside selection against ``max_per_track``.

        The bar (best quality sent) and the interval are left alone: the track's first face that passes
        the gate later is still sent at once, since the noted crop was one that failed the gate.
        """
        self._tracks.setdefault(track_id, _TrackShots()).sent += 1

    def _release_pending(self, st: _TrackShots[T], t: float, seen: bool = False) -> list[Release[T]]:
        """The track's pending shot if due at ``t``; a refresh only while the track is ``seen`` (offering)."""
        p = st.pending
        if p is None or st.sent >= self.max_per_track or (p.refresh and not seen):
            return []
        wait = self.refresh_s if p.refresh and self.refresh_s is not None else self.min_interval_s
        if t - st.last_sent_s < wait:
            return []
        self._record(st, t, p.quality)
        self.refreshed += int(p.refresh)
        return [Release(p.payload, p.refresh)]

    def due(self, t: float) -> list[tuple[str, Release[T]]]:
        """Held shots whose interval has passed at ``t`` (for tracks not seen in the current frame; a refresh
        candidate waits until its track is seen again)."""
        out: list[tuple[str, Release[T]]] = []
        for tid, st in self._tracks.items():
            for r in self._release_pending(st, t):
                out.append((tid, r))
        return out

    def end(self, track_id: str, t: float) -> tuple[list[Release[T]], int]:
        """The track is gone: send its held shot if the interval allows (not a refresh), then forget it.

        Returns the shots to send now and how many the track sent in all (for crops-per-track figures).
        """
        st = self._tracks.pop(track_id, None)
        if st is None:
            return [], 0
        out = self._release_pending(st, t)
        return out, st.sent
