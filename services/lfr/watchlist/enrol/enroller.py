"""The enroller: photos into a watchlist store, one at a time or a whole import, every change audited.

Audit records hold ids and counts only: never display names, images or embeddings; the same goes for
INFO logs. One bad image never stops an import: each refusal is counted by reason in the summary.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from lfr.core.audit import AuditLog
from lfr.core.config import Settings
from lfr.watchlist.enrol.photos import EnrolmentRejected, FaceEnroller, PreparedImage, RejectCode, prepare
from lfr.watchlist.enrol.sources import read_source
from lfr.watchlist.store import SubjectMeta, SubjectRecord, WatchlistStore

log = logging.getLogger(__name__)


@dataclass
class Rejection:
    ref: str
    subject_id: str
    code: str
    reason: str


@dataclass
class ImportSummary:
    total: int = 0
    accepted: int = 0
    subjects: int = 0
    rejected: list[Rejection] = field(default_factory=list)

    def by_code(self) -> dict[str, int]:
        return dict(Counter(r.code for r in self.rejected))

    def as_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "accepted": self.accepted,
            "subjects": self.subjects,
            "rejected": len(self.rejected),
            "rejected_by_reason": self.by_code(),
            "rejections": [r.__dict__ for r in self.rejected],
        }


class Enroller:
    """Enrols photos into a WatchlistStore and writes an audit record for every change."""

    def __init__(
        self, settings: Settings, store: WatchlistStore, audit: AuditLog, analyzer: FaceEnroller | None = None
    ) -> None:
        self.settings = settings
        self.store = store
        self.audit = audit
        self._analyzer = analyzer
        self._build_lock = threading.Lock()
        self._run_lock = threading.Lock()

    @property
    def analyzer(self) -> FaceEnroller:
        """Built on first use: loading the models takes seconds and most API calls never enrol."""
        if self._analyzer is None:
            with self._build_lock:
                if self._analyzer is None:
                    from lfr.vision import FaceAnalyzer

                    self._analyzer = FaceAnalyzer(self.settings)
        return self._analyzer

    async def enrol(
        self, meta: SubjectMeta, image: bytes, actor: str, reason: str = "", via: str = "api"
    ) -> SubjectRecord:
        """Enrol one photo of one subject; raises EnrolmentRejected with a reason code when unusable."""
        if not actor:
            raise ValueError("enrolment needs an actor for the audit log")
        prepared = await asyncio.to_thread(self._prepare, image)
        existed = await asyncio.to_thread(self.store.get_subject, meta.watchlist_id, meta.subject_id)
        pk = await asyncio.to_thread(
            self.store.upsert_subject, meta, prepared.embedding, prepared.image_sha256, prepared.thumbnail
        )
        try:
            await self.audit.append(
                actor,
                "watchlist.enrol",
                f"{meta.watchlist_id}/{meta.subject_id}",
                reason,
                {
                    "watchlist_id": meta.watchlist_id,
                    "subject_id": meta.subject_id,
                    "image_id": pk,
                    "category": str(meta.category),
                    "expires_at": str(meta.expires_at),
                    "via": via,
                },
            )
        except Exception:
            if existed is None or pk not in existed.image_ids:
                await asyncio.to_thread(self.store.delete_image, pk)
            log.error("enrolment of image %s rolled back: audit record could not be written", pk)
            raise
        log.info("enrolled image %s into watchlist %s", pk, meta.watchlist_id)
        record = await asyncio.to_thread(self.store.get_subject, meta.watchlist_id, meta.subject_id)
        if record is None:  # deleted concurrently between the write and this read
            raise LookupError(f"subject {meta.subject_id} vanished during enrolment")
        return record

    def _prepare(self, image: bytes) -> PreparedImage:
        return prepare(self.analyzer, image, self.settings, self._run_lock)

    async def bulk_import(
        self,
        source: Path,
        watchlist_id: str,
        actor: str,
        defaults: dict[str, Any] | None = None,
        reason: str = "",
        progress: bool = True,
    ) -> ImportSummary:
        """Enrol every image of a folder or CSV; one bad image never stops the rest. Summary by reason."""
        items = read_source(source, watchlist_id, defaults)
        summary = ImportSummary(total=len(items))
        subjects: set[str] = set()
        bar = tqdm(items, desc="enrolling", unit="img", disable=not progress, file=sys.stderr, leave=True)
        for item in bar:
            sid = item.meta.subject_id if item.meta else ""
            if item.error or item.meta is None or item.image_path is None:
                summary.rejected.append(
                    Rejection(item.ref, sid, RejectCode.INVALID, item.error or "unusable row")
                )
            else:
                try:
                    data = await asyncio.to_thread(
                        _read_bytes, item.image_path, self.settings.api.max_upload_bytes
                    )
                    await self.enrol(item.meta, data, actor, reason, via="import")
                except EnrolmentRejected as exc:
                    summary.rejected.append(Rejection(item.ref, sid, str(exc.code), str(exc)))
                except OSError as exc:
                    summary.rejected.append(
                        Rejection(
                            item.ref,
                            sid,
                            RejectCode.UNREADABLE,
                            f"cannot read the file: {exc.strerror or exc}",
                        )
                    )
                else:
                    summary.accepted += 1
                    subjects.add(sid)
            bar.set_postfix(accepted=summary.accepted, rejected=len(summary.rejected), refresh=False)
        summary.subjects = len(subjects)
        details = {
            "watchlist_id": watchlist_id,
            "total": summary.total,
            "accepted": summary.accepted,
            "subjects": summary.subjects,
            "rejected": len(summary.rejected),
        }
        details.update({f"rejected_{k}": v for k, v in summary.by_code().items()})
        await self.audit.append(
            actor, "watchlist.import", watchlist_id, reason, {k: str(v) for k, v in details.items()}
        )
        log.info(
            "import into watchlist %s: %d accepted, %d rejected of %d",
            watchlist_id,
            summary.accepted,
            len(summary.rejected),
            summary.total,
        )
        return summary


def _read_bytes(path: Path, max_bytes: int) -> bytes:
    """Read a file, refusing one over ``max_bytes`` without reading it all."""
    size = path.stat().st_size
    if size > max_bytes:
        raise EnrolmentRejected(
            RejectCode.OVERSIZED, f"the image is {size:,} bytes; the limit is {max_bytes:,}"
        )
    return path.read_bytes()
