"""Submitting a distributed gallery import: list the root, audit, create the gallery and the job, publish.

Why the submitter creates the gallery collection: workers start on records of many jobs at once, and
letting each race to create a collection (with the index parameters of whichever came first) would make
the gallery's index depend on timing. The submission itself is resumable: the job keeps how many records
the broker acknowledged (``submitted``), and submitting again with the same job id lists the root again,
checks it is the same listing (same count and the same SHA-256), and publishes from there. Publishing a
record twice costs only a redundant delivery (the workers' done-bitmap skips it).

Every submission, first or resumed, is audited before anything changes (lfr.retro.import_audit): an import
whose audit record cannot be written is refused with nothing created or published.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lfr.core import topics
from lfr.core.audit import AuditLog
from lfr.core.bus import ensure_topics, make_producer
from lfr.core.config import Settings
from lfr.core.images import list_images
from lfr.core.redis_client import make_redis
from lfr.core.serde import encode, version_header
from lfr.core.topics import spec_for
from lfr.retro import import_audit
from lfr.retro.gallery import Gallery, GalleryError
from lfr.retro.import_audit import Audit, check_actor, check_reason, manifest_sha256
from lfr.retro.import_jobs import JobSpec, JobStatus, JobStore, check_job_id, new_job_id, records_for
from lfr.vision import ModelCard

log = logging.getLogger(__name__)
PUBLISH_CHUNK = 2_000  # records per acknowledged chunk: the submission resumes at a chunk boundary


def list_items(folder: Path) -> tuple[Path, list[str]]:
    """The resolved root and the job's listing: image paths relative to it, sorted (the order of ``seq``)."""
    root = Path(folder).resolve()
    if not root.is_dir():
        raise GalleryError(f"import folder {root} does not exist")
    return root, [p.relative_to(root).as_posix() for p in list_images(root)]


class AuditUnavailableError(GalleryError):
    """The submission's audit record could not be written, so nothing was created or published."""


async def submit_import(
    settings: Settings,
    folder: Path,
    gallery: str,
    card: ModelCard,
    *,
    actor: str,
    reason: str,
    job_id: str | None = None,
    chunk: int = PUBLISH_CHUNK,
    on_chunk: Callable[[int, int], None] | None = None,
) -> JobStatus:
    """Publish one record per image under ``folder`` for the import workers; returns the job's status.

    ``actor`` (who) and ``reason`` (the authority for the import) go to the audit log and are checked
    before the root is listed or anything connects. ``job_id`` of an earlier, interrupted submission
    resumes it; a new id is made otherwise. ``on_chunk(submitted, total)`` runs after each acknowledged
    chunk.
    """
    actor, reason = check_actor(actor), check_reason(reason)
    root, items = await asyncio.to_thread(list_items, folder)
    if not items:
        raise GalleryError(f"no images under {root}")
    redis = make_redis(settings)
    try:
        await ensure_topics(settings, [spec_for(settings, topics.GALLERY_IMPORT)])
        producer = make_producer(settings, "gallery-submit")
        await producer.start()
        try:

            def ensure_gallery() -> None:
                g = Gallery(settings, gallery, card)
                try:
                    g.ensure()
                finally:
                    g.close()

            return await submit_listing(
                JobStore(settings, redis),
                AuditLog(settings, producer, redis),
                producer,
                ensure_gallery,
                root,
                items,
                gallery,
                card.model_id,
                actor=actor,
                reason=reason,
                job_id=job_id,
                chunk=chunk,
                on_chunk=on_chunk,
            )
        finally:
            await producer.stop()
    finally:
        await redis.aclose()


async def submit_listing(
    jobs: JobStore,
    audit: Audit,
    producer: Any,
    ensure_gallery: Callable[[], None],
    root: Path,
    items: Sequence[str],
    gallery: str,
    model_id: str,
    *,
    actor: str,
    reason: str,
    job_id: str | None = None,
    chunk: int = PUBLISH_CHUNK,
    on_chunk: Callable[[int, int], None] | None = None,
) -> JobStatus:
    """The submission over connections the caller owns (``producer``: an aiokafka producer's ``send``;
    ``ensure_gallery`` runs in a thread): resume checks, audit, gallery and job creation, publishing."""
    actor, reason = check_actor(actor), check_reason(reason)
    manifest = manifest_sha256(items)
    earlier = None if job_id is None else await jobs.spec(check_job_id(job_id))
    resumed = earlier is not None
    if earlier is not None:
        spec = earlier
        if (spec.gallery, spec.root, spec.total) != (gallery, str(root), len(items)) or (
            spec.manifest_sha256 and spec.manifest_sha256 != manifest
        ):
            raise GalleryError(
                f"job {job_id} imports {spec.total} images from {spec.root} into {spec.gallery}; this "
                f"listing is {len(items)} images from {root} into {gallery}"
                + (" with other paths" if spec.total == len(items) else "")
                + ": submit it as a new job"
            )
        if spec.model_id != model_id:
            raise GalleryError(f"job {job_id} was submitted for model {spec.model_id}, not {model_id}")
        start = (await jobs.status(spec.job_id)).counters["submitted"]
    else:
        spec = JobSpec(
            job_id or new_job_id(gallery),
            gallery,
            str(root),
            len(items),
            model_id,
            int(time.time() * 1000),
            manifest,
            actor,
        )
        start = 0
    # Audit first: an import that cannot be recorded must not start.
    details = import_audit.submit_details(spec, start)
    if spec.manifest_sha256 != manifest:  # resuming a job from before hashes were kept
        details["manifest_sha256"] = manifest
    try:
        await audit.append(actor, import_audit.SUBMIT, import_audit.target(gallery), reason, details)
    except Exception as exc:
        raise AuditUnavailableError(
            f"import refused: its audit record could not be written ({type(exc).__name__}); nothing was "
            "created or published"
        ) from exc
    submitted = start
    try:
        if not resumed:
            await asyncio.to_thread(ensure_gallery)
            await jobs.create(spec)
        header = [version_header(topics.GALLERY_IMPORT)]
        for s in range(start, len(items), chunk):
            futures = [
                await producer.send(topics.GALLERY_IMPORT, encode(rec), key=rec.item.encode(), headers=header)
                for rec in records_for(spec, items, s, s + chunk)
            ]
            await asyncio.gather(*futures)
            submitted = min(s + chunk, len(items))
            await jobs.set_submitted(spec.job_id, submitted)
            if on_chunk is not None:
                on_chunk(submitted, len(items))
    except Exception as exc:
        try:
            await audit.append(
                actor,
                import_audit.SUBMIT_FAILED,
                import_audit.target(gallery),
                reason,
                import_audit.submit_failed_details(spec, submitted, exc),
            )
        except Exception as audit_exc:  # the submission's own error is the one to raise
            log.error(
                "gallery import job %s: submission failed and its failure could not be audited (%s)",
                spec.job_id,
                type(audit_exc).__name__,
            )
        raise
    return await jobs.status(spec.job_id)


async def job_status(settings: Settings, job_id: str) -> JobStatus:
    redis = make_redis(settings)
    try:
        return await JobStore(settings, redis).status(job_id)
    finally:
        await redis.aclose()


async def failed_items(settings: Settings, job_id: str, limit: int) -> list[str]:
    redis = make_redis(settings)
    try:
        return await JobStore(settings, redis).failed_items(job_id, limit)
    finally:
        await redis.aclose()
