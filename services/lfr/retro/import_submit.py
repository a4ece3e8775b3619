"""Submitting a distributed gallery import: list the root, create the gallery and the job, publish records.

Why the submitter creates the gallery collection: workers start on records of many jobs at once, and
letting each race to create a collection (with the index parameters of whichever came first) would make
the gallery's index depend on timing. The submission itself is resumable: the job keeps how many records
the broker acknowledged (``submitted``), and submitting again with the same job id lists the root again,
checks it is the same listing, and publishes from there. Publishing a record twice costs only a redundant
delivery (the workers' done-bitmap skips it).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from lfr.core import topics
from lfr.core.bus import ensure_topics, make_producer
from lfr.core.config import Settings
from lfr.core.images import list_images
from lfr.core.redis_client import make_redis
from lfr.core.serde import encode, version_header
from lfr.core.topics import spec_for
from lfr.retro.gallery import Gallery, GalleryError
from lfr.retro.import_jobs import JobSpec, JobStatus, JobStore, check_job_id, new_job_id, records_for
from lfr.vision import ModelCard

PUBLISH_CHUNK = 2_000  # records per acknowledged chunk: the submission resumes at a chunk boundary


def list_items(folder: Path) -> tuple[Path, list[str]]:
    """The resolved root and the job's listing: image paths relative to it, sorted (the order of ``seq``)."""
    root = Path(folder).resolve()
    if not root.is_dir():
        raise GalleryError(f"import folder {root} does not exist")
    return root, [p.relative_to(root).as_posix() for p in list_images(root)]


async def submit_import(
    settings: Settings,
    folder: Path,
    gallery: str,
    card: ModelCard,
    *,
    job_id: str | None = None,
    chunk: int = PUBLISH_CHUNK,
    on_chunk: Callable[[int, int], None] | None = None,
) -> JobStatus:
    """Publish one record per image under ``folder`` for the import workers; returns the job's status.

    ``job_id`` of an earlier, interrupted submission resumes it; a new id is made otherwise.
    ``on_chunk(submitted, total)`` runs after each acknowledged chunk.
    """
    root, items = await asyncio.to_thread(list_items, folder)
    if not items:
        raise GalleryError(f"no images under {root}")
    redis = make_redis(settings)
    try:
        jobs = JobStore(settings, redis)
        if job_id is not None and (spec := await jobs.spec(check_job_id(job_id))) is not None:
            if (spec.gallery, spec.root, spec.total) != (gallery, str(root), len(items)):
                raise GalleryError(
                    f"job {job_id} imports {spec.total} images from {spec.root} into {spec.gallery}; this "
                    f"listing is {len(items)} images from {root} into {gallery}: submit it as a new job"
                )
            if spec.model_id != card.model_id:
                raise GalleryError(
                    f"job {job_id} was submitted for model {spec.model_id}, not {card.model_id}"
                )
            start = (await jobs.status(job_id)).counters["submitted"]
        else:
            spec = JobSpec(
                job_id or new_job_id(gallery),
                gallery,
                str(root),
                len(items),
                card.model_id,
                int(time.time() * 1000),
            )
            g = Gallery(settings, gallery, card)
            try:
                await asyncio.to_thread(g.ensure)
            finally:
                g.close()
            await jobs.create(spec)
            start = 0
        await ensure_topics(settings, [spec_for(settings, topics.GALLERY_IMPORT)])
        producer = make_producer(settings, "gallery-submit")
        await producer.start()
        try:
            header = [version_header(topics.GALLERY_IMPORT)]
            for s in range(start, len(items), chunk):
                futures = [
                    await producer.send(
                        topics.GALLERY_IMPORT, encode(rec), key=rec.item.encode(), headers=header
                    )
                    for rec in records_for(spec, items, s, s + chunk)
                ]
                await asyncio.gather(*futures)
                n = min(s + chunk, len(items))
                await jobs.set_submitted(spec.job_id, n)
                if on_chunk is not None:
                    on_chunk(n, len(items))
        finally:
            await producer.stop()
        return await jobs.status(spec.job_id)
    finally:
        await redis.aclose()


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
