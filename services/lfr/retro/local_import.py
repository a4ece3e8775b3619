"""The single-process gallery import (`lfr gallery import`), audited like the distributed one.

A small force imports a few thousand custody images from one machine rather than through the worker group
(lfr.retro.import_submit), but the gallery changes all the same, so the same rules hold: who and on what
authority is recorded (``gallery.import.local``: actor, reason, gallery, image count, the listing's
SHA-256, whether it resumes) *before* any row is written, and an import whose record cannot be written
never starts; its end is recorded with the report's counters (``gallery.import.local_finished``) or, if
it stops on an error or an interruption, ``gallery.import.local_failed`` with the error's type only.
Records hold ids, counts and hashes, never image paths, images or embeddings.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from pathlib import Path

from lfr.core.audit import AuditLog
from lfr.core.bus import make_producer
from lfr.core.config import Settings
from lfr.core.redis_client import make_redis
from lfr.retro import import_audit
from lfr.retro.gallery import Gallery, GalleryError, ImportReport, import_folder
from lfr.retro.import_audit import check_actor, check_reason, manifest_sha256
from lfr.retro.import_submit import AuditUnavailableError, list_items
from lfr.vision import FaceAnalyzer

log = logging.getLogger(__name__)

LOCAL = "gallery.import.local"
LOCAL_FINISHED = "gallery.import.local_finished"
LOCAL_FAILED = "gallery.import.local_failed"


async def _append(
    settings: Settings, actor: str, action: str, target: str, reason: str, details: Mapping[str, str]
) -> None:
    redis = make_redis(settings)
    try:
        producer = make_producer(settings, "gallery-import-local")
        await producer.start()
        try:
            await AuditLog(settings, producer, redis).append(actor, action, target, reason, dict(details))
        finally:
            await producer.stop()
    finally:
        await redis.aclose()


def audited_import(
    settings: Settings,
    gallery: Gallery,
    folder: Path,
    analyzer: FaceAnalyzer,
    *,
    actor: str,
    reason: str,
    resume: bool = False,
    batch_size: int = 64,
    progress: bool = False,
    on_batch: Callable[[int, int], None] | None = None,
) -> ImportReport:
    """Audit, then :func:`lfr.retro.gallery.import_folder`, then audit its outcome.

    Synchronous like ``import_folder`` (call it from a thread inside an event loop). Raises
    :class:`AuditUnavailableError` with nothing imported when the first record cannot be written.
    """
    actor, reason = check_actor(actor), check_reason(reason)
    root, items = list_items(folder)
    if not items:
        raise GalleryError(f"no images under {root}")
    where = import_audit.target(gallery.name)
    details = {
        "gallery": gallery.name,
        "items": str(len(items)),
        "manifest_sha256": manifest_sha256(items),
        "model": gallery.card.model_id,
        "root": str(root),
        "resume": "true" if resume else "false",
    }
    try:
        asyncio.run(_append(settings, actor, LOCAL, where, reason, details))
    except Exception as exc:  # any failure to record refuses the import alike
        raise AuditUnavailableError(
            f"import refused: its audit record could not be written ({type(exc).__name__}); nothing was "
            "imported"
        ) from exc
    try:
        report = import_folder(
            gallery,
            root,
            analyzer,
            resume=resume,
            batch_size=batch_size,
            progress=progress,
            on_batch=on_batch,
        )
    except BaseException as exc:  # an interruption is recorded too, then goes on
        failed = {"gallery": gallery.name, "items": str(len(items)), "error": type(exc).__name__}
        try:
            asyncio.run(_append(settings, actor, LOCAL_FAILED, where, "", failed))
        except Exception as audit_exc:  # the import's own error matters more; say so and go on
            log.error("gallery import stopped and its end was NOT audited (%s)", type(audit_exc).__name__)
        raise
    counts = {k: str(v) for k, v in report.as_dict().items() if k not in ("checkpoint",)}
    finished = {**counts, "manifest_sha256": details["manifest_sha256"], "model": details["model"]}
    try:
        asyncio.run(_append(settings, actor, LOCAL_FINISHED, where, "", finished))
    except Exception as exc:  # the rows are written: report, do not undo
        log.error("gallery import finished but its end was NOT audited (%s)", type(exc).__name__)
    return report
