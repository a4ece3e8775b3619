"""Watchlist subjects: enrol, import, read, change, delete and sweep, each change audited.

One service behind the API routes and the `lfr watchlist` command, so both apply the same rules (enrolment
checks, audit of every change). Milvus and model calls are synchronous libraries: they run in worker threads
so the API's event loop keeps serving.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from lfr.core.audit import AuditLog
from lfr.core.config import Settings
from lfr.watchlist.card_stores import CardStores
from lfr.watchlist.enrol import Enroller, FaceEnroller, ImportSummary
from lfr.watchlist.errors import AuditUnavailable, SubjectNotFound
from lfr.watchlist.store import SubjectMeta, SubjectRecord, WatchlistStore
from lfr.watchlist.types import now_s, validate_id

log = logging.getLogger(__name__)


class SubjectService:
    """The subjects of the default embedder's watchlist collection; the enroller is built on first use."""

    def __init__(
        self,
        settings: Settings,
        stores: CardStores,
        audit: AuditLog,
        analyzer: FaceEnroller | None = None,
    ) -> None:
        self.settings = settings
        self.stores = stores
        self.audit = audit
        self._analyzer = analyzer
        self._enroller: Enroller | None = None

    @property
    def store(self) -> WatchlistStore:
        return self.stores.store

    @property
    def enroller(self) -> Enroller:
        if self._enroller is None:
            self._enroller = Enroller(self.settings, self.store, self.audit, self._analyzer)
        return self._enroller

    async def enrol(self, meta: SubjectMeta, image: bytes, actor: str, reason: str = "") -> SubjectRecord:
        return await self.enroller.enrol(meta, image, actor, reason)

    async def import_subjects(
        self,
        source: Path,
        watchlist_id: str,
        actor: str,
        defaults: dict[str, Any] | None = None,
        reason: str = "",
        progress: bool = True,
    ) -> ImportSummary:
        validate_id(watchlist_id, "watchlist_id")
        return await self.enroller.bulk_import(source, watchlist_id, actor, defaults, reason, progress)

    async def watchlists(self) -> dict[str, int]:
        return await asyncio.to_thread(self.store.watchlists)

    async def list_subjects(self, watchlist_id: str, thumbnails: bool = False) -> list[SubjectRecord]:
        return await asyncio.to_thread(self.store.list_subjects, watchlist_id, thumbnails)

    async def get_subject(self, watchlist_id: str, subject_id: str) -> SubjectRecord:
        rec = await asyncio.to_thread(self.store.get_subject, watchlist_id, subject_id)
        if rec is None:
            raise SubjectNotFound(f"no subject {subject_id} on watchlist {watchlist_id}")
        return rec

    async def update_subject(
        self, watchlist_id: str, subject_id: str, changes: dict[str, Any], actor: str, reason: str = ""
    ) -> SubjectRecord:
        """Change a subject's metadata; the audit names the fields changed, never their values."""
        changes = {k: v for k, v in changes.items() if v is not None}
        if not changes:
            raise ValueError(
                "nothing to change: give at least one of category, display_name, source, "
                "image_date, expires_at"
            )
        before = await self.get_subject(watchlist_id, subject_id)
        rec = await asyncio.to_thread(self.store.update_subject, watchlist_id, subject_id, **changes)
        if rec is None:
            raise SubjectNotFound(f"no subject {subject_id} on watchlist {watchlist_id}")
        try:
            await self.audit.append(
                actor,
                "watchlist.update",
                f"{watchlist_id}/{subject_id}",
                reason,
                {
                    "watchlist_id": watchlist_id,
                    "subject_id": subject_id,
                    "fields": ",".join(sorted(changes)),
                    "expires_at": str(rec.expires_at),
                    "category": str(rec.category),
                },
            )
        except Exception as exc:
            restore = {k: getattr(before, k) for k in changes}
            await asyncio.to_thread(self.store.update_subject, watchlist_id, subject_id, **restore)
            raise AuditUnavailable(
                f"update of {subject_id} rolled back: audit log unavailable ({exc})"
            ) from exc
        return rec

    async def delete_subject(self, watchlist_id: str, subject_id: str, actor: str, reason: str = "") -> int:
        """Delete every image of a subject; searches stop finding it before this returns."""
        n = await asyncio.to_thread(self.store.delete_subject, watchlist_id, subject_id)
        if n == 0:
            raise SubjectNotFound(f"no subject {subject_id} on watchlist {watchlist_id}")
        await self._audit_or_log(
            actor,
            "watchlist.delete",
            f"{watchlist_id}/{subject_id}",
            reason,
            {
                "watchlist_id": watchlist_id,
                "subject_id": subject_id,
                "images_deleted": str(n),
            },
        )
        return n

    async def sweep(self, actor: str, now: int | None = None) -> int:
        """Delete expired entries (retention); audited even when nothing expired, as evidence it ran."""
        t = now_s() if now is None else int(now)
        n = await asyncio.to_thread(self.store.sweep_expired, t)
        await self._audit_or_log(
            actor,
            "watchlist.sweep",
            self.store.collection,
            "",
            {
                "rows_deleted": str(n),
                "cutoff": str(t),
            },
        )
        log.info("watchlist sweep deleted %d expired images", n)
        return n

    async def _audit_or_log(
        self, actor: str, action: str, target: str, reason: str, details: dict[str, str]
    ) -> None:
        """For deletions, which cannot be undone: the data is gone either way, so say so loudly."""
        try:
            await self.audit.append(actor, action, target, reason, details)
        except Exception as exc:
            log.error("%s on %s done but NOT audited (%s): %s", action, target, type(exc).__name__, details)
            raise AuditUnavailable(
                f"{action} on {target} was carried out but the audit record could not be "
                f"written ({type(exc).__name__}); the error log holds its details"
            ) from exc
