"""The demo's watchlist holds exactly the people of the folder the demo was given, and says how many.

Why replace rather than add: every demo run enrols into the same ``demo-watchlist``, and people enrolled by
an earlier run (another ``--watchlist`` folder, or the sample scene) would otherwise stay on it, so a run
alerted on people its operator never asked for. Each run therefore deletes the watchlist's previous
subjects, one audited ``watchlist.delete`` each (the same governance path as any deletion), before enrolling
the folder; the count printed afterwards is read back from the store, not assumed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from lfr.watchlist.enrol import ImportSummary
from lfr.watchlist.store import SubjectRecord

REPLACE_REASON = "demo run: the demo watchlist is replaced by the folder given to this run"
ENROL_REASON = "demo enrolment"


class WatchlistOps(Protocol):
    """What the replacement needs from lfr.watchlist.subjects.SubjectService."""

    async def list_subjects(self, watchlist_id: str, thumbnails: bool = False) -> list[SubjectRecord]: ...

    async def delete_subject(
        self, watchlist_id: str, subject_id: str, actor: str, reason: str = ""
    ) -> int: ...

    async def import_subjects(
        self,
        source: Path,
        watchlist_id: str,
        actor: str,
        defaults: dict[str, object] | None = None,
        reason: str = "",
        progress: bool = True,
    ) -> ImportSummary: ...


@dataclass(frozen=True)
class DemoWatchlist:
    """What the run enrolled and what the watchlist holds afterwards."""

    removed_subjects: int
    enrolled: ImportSummary
    subjects: int
    images: int

    def describe(self, watchlist_id: str) -> str:
        s = self.enrolled
        rejected = len(s.rejected)
        return (
            f"enrolled {s.accepted} image(s) of {s.subjects} subject(s) into {watchlist_id}"
            + (f", rejected {rejected}: {s.by_code()}" if rejected else "")
            + (
                f"; removed {self.removed_subjects} subject(s) left by an earlier run"
                if self.removed_subjects
                else ""
            )
            + f"\nwatchlist {watchlist_id} holds {self.subjects} subject(s), {self.images} image(s): "
            "the people this run searches for"
        )


async def replace_watchlist(svc: WatchlistOps, watchlist_id: str, folder: Path, actor: str) -> DemoWatchlist:
    """Empty ``watchlist_id`` (audited), enrol ``folder`` into it, and read back what it holds."""
    old = await svc.list_subjects(watchlist_id)
    for rec in old:
        await svc.delete_subject(watchlist_id, rec.subject_id, actor, reason=REPLACE_REASON)
    summary = await svc.import_subjects(folder, watchlist_id, actor, reason=ENROL_REASON, progress=False)
    held = await svc.list_subjects(watchlist_id)
    return DemoWatchlist(
        removed_subjects=len(old),
        enrolled=summary,
        subjects=len(held),
        images=sum(r.images for r in held),
    )
