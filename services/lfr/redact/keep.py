"""Which tracks stay visible: chosen by track number, or recognised as a watchlist subject to keep.

Recognition goes through retrospective search's watchlist source (lfr.retro.search.WatchlistSource), so a
redaction and a retrospective search of the same footage rank the same candidates under the same
threshold. A track is kept as a subject only when most of its sampled faces (its largest, up to
engine.MAX_SAMPLES) have that subject as their best candidate and clear the model card's threshold: a
bystander shown by a spurious match is a disclosure, while a kept subject left covered is only an
inconvenience the officer fixes with ``--keep-track`` after looking at the preview.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from lfr.redact.tracks import Track


class CandidateLike(Protocol):
    @property
    def subject_id(self) -> str: ...

    @property
    def clears_threshold(self) -> bool: ...


class CandidateSearch(Protocol):
    """What lfr.retro.search.WatchlistSource offers: top-k candidates per vector."""

    def search(self, vectors: np.ndarray, top_k: int) -> Sequence[Sequence[CandidateLike]]: ...


@dataclass(frozen=True)
class KeepDecision:
    track_id: int
    why: str  # "track" (chosen by number) or "subject"
    subject_id: str | None = None
    samples: int = 0
    agreeing: int = 0


def recognise(tracks: Iterable[Track], source: CandidateSearch, subjects: set[str]) -> list[KeepDecision]:
    """Tracks whose faces mostly match one of ``subjects`` above the threshold."""
    out: list[KeepDecision] = []
    for t in tracks:
        if not t.embeddings:
            continue
        rows = source.search(np.stack(t.embeddings), 1)
        votes = Counter(
            row[0].subject_id
            for row in rows
            if row and row[0].clears_threshold and row[0].subject_id in subjects
        )
        if not votes:
            continue
        subject, n = votes.most_common(1)[0]
        if 2 * n > len(t.embeddings):
            out.append(KeepDecision(t.track_id, "subject", subject, len(t.embeddings), n))
    return out


def by_number(tracks: Iterable[Track], numbers: Iterable[int]) -> list[KeepDecision]:
    """Decisions for the ``--keep-track`` numbers; an unknown number is an error (a typo must not pass)."""
    known = {t.track_id for t in tracks}
    wanted = sorted(set(numbers))
    missing = [n for n in wanted if n not in known]
    if missing:
        raise ValueError(
            f"no track numbered {', '.join(map(str, missing))} in this input "
            f"(tracks 1..{max(known, default=0)}): "
            "take the numbers from this file's preview"
        )
    return [KeepDecision(n, "track") for n in wanted]
