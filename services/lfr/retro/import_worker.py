"""The gallery import worker (`lfr gallery worker`): records of lfr.gallery-import.v1 -> gallery rows.

Each worker is a member of the consumer group ``lfr-gallery-import`` on the loss-free stage
(lfr.core.stage), so adding workers adds throughput up to the topic's partitions, and an offset is committed
only after its batch is handled. Per batch: skip the items the job's done-bitmap already has, embed the
rest (the most likely face of each photo, as `lfr gallery import` does), upsert the rows (id derived from
gallery and item), and only after Milvus acknowledged them set the done bits and counters in Redis. A crash
anywhere in between redelivers the batch: images upserted but not yet marked are embedded again and
replace their own rows, so the gallery never holds an image twice and the counters never count one twice.

Records are checked against the job they name before any file is opened: the root comes from the job
in Redis, never from the record alone, and an item must be a plain relative path, so a forged record cannot
make a worker read files outside the import root. Records that fail these checks go to the dead-letter
topic (their paths and record ids are kept out of it: ``keep_payload=False``).

The worker whose batch finishes a job writes its ``gallery.import.finished`` audit record (counters and the
submitter; lfr.retro.import_audit), after the rows are in Milvus and the job's counters are final.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import redis.asyncio as aioredis
from aiokafka import ConsumerRecord

from lfr.core import topics
from lfr.core.audit import AuditLog
from lfr.core.bus import ensure_topics, make_producer
from lfr.core.config import Settings
from lfr.core.milvus import MilvusConnection
from lfr.core.redis_client import make_redis
from lfr.core.serde import SerdeError, decode
from lfr.core.service import ServiceContext
from lfr.core.stage import Output, Stage, dead_letter
from lfr.core.topics import spec_for
from lfr.retro.gallery import Gallery
from lfr.retro.import_audit import Audit, audit_finished
from lfr.retro.import_jobs import Finished, ImportJobError, JobSpec, JobStore, outcome_fields, safe_item
from lfr.v1.gallery_import_pb2 import GalleryImportItem
from lfr.vision import FaceAnalyzer
from lfr.vision.photo_embedding import EmbedOutcome, PhotoEmbedder

log = logging.getLogger(__name__)

STAGE = "gallery-import"
GROUP_ID = topics.GALLERY_IMPORT_GROUP
BATCH = 16  # records per stage batch: about a second of embedding on one core


class ImportHandler:
    """Handles one stage batch; embedding and Milvus calls run in a thread so group heartbeats go on."""

    def __init__(
        self, settings: Settings, redis: aioredis.Redis, analyzer: FaceAnalyzer, audit: Audit
    ) -> None:
        self.settings = settings
        self.jobs = JobStore(settings, redis)
        self.audit = audit
        self.analyzer = analyzer
        self.photos = PhotoEmbedder(analyzer, template=True)
        self.card = analyzer.embedder.card
        self.milvus = MilvusConnection(settings)
        self._galleries: dict[str, Gallery] = {}
        self._specs: dict[str, JobSpec] = {}

    def close(self) -> None:
        for g in self._galleries.values():
            g.close()
        self.milvus.close()

    def gallery(self, name: str) -> Gallery:
        g = self._galleries.get(name)
        if g is None:
            g = Gallery(self.settings, name, self.card, milvus=self.milvus)
            g.ensure(create=False)
            self._galleries[name] = g
        return g

    async def _spec(self, job_id: str) -> JobSpec | None:
        spec = self._specs.get(job_id)
        if spec is None:  # unknown jobs are asked again: their submission may be under way
            spec = await self.jobs.spec(job_id)
            if spec is not None:
                self._specs[job_id] = spec
        return spec

    async def __call__(self, records: Sequence[ConsumerRecord]) -> list[Output]:
        outputs: list[Output] = []
        by_job: dict[str, list[GalleryImportItem]] = {}
        for r in records:
            try:
                msg = decode(GalleryImportItem, r.value)
            except SerdeError as exc:
                outputs.append(dead_letter(STAGE, r, exc.reason, str(exc), keep_payload=False))
                continue
            reason = await self._refusal(msg)
            if reason:
                outputs.append(dead_letter(STAGE, r, reason, reason, keep_payload=False))
                continue
            by_job.setdefault(msg.job_id, []).append(msg)
        for job_id, items in by_job.items():
            await self._import(job_id, items)
        return outputs

    async def _refusal(self, msg: GalleryImportItem) -> str:
        """Why a record may not be imported ("" when it may)."""
        if not msg.job_id:
            return "unknown_job"
        try:
            spec = await self._spec(msg.job_id)
        except ImportJobError:
            return "unknown_job"
        if spec is None:
            return "unknown_job"
        if (msg.gallery, msg.root) != (spec.gallery, spec.root) or msg.seq >= spec.total:
            return "job_mismatch"
        if not safe_item(msg.item):
            return "unsafe_path"
        if spec.model_id != self.card.model_id:
            return "model_mismatch"
        return ""

    async def _import(self, job_id: str, items: list[GalleryImportItem]) -> None:
        mask = await self.jobs.done_mask(job_id, [int(m.seq) for m in items])
        todo = [m for m, done in zip(items, mask, strict=True) if not done]
        if not todo:
            return
        outcomes = await asyncio.to_thread(self._embed, todo)
        rows = [(m, o) for m, o in zip(todo, outcomes, strict=True) if o.vector is not None]
        gallery = await asyncio.to_thread(self.gallery, todo[0].gallery)  # connects on first use
        if rows:
            await asyncio.to_thread(
                gallery.upsert,
                [m.subject_id for m, _ in rows],
                [m.item for m, _ in rows],
                np.stack([o.vector for _, o in rows if o.vector is not None]),
            )
        finished = [
            Finished(
                int(m.seq),
                outcome_fields(o.status, o.quality_passed),
                m.item if o.vector is None else "",
            )
            for m, o in zip(todo, outcomes, strict=True)
        ]
        new, done, job_finished = await self.jobs.mark_done(job_id, finished)
        if job_finished:
            # Flushing seals the growing segments so the index covers every row; once per job is enough.
            await asyncio.to_thread(gallery.flush)
            log.info("gallery import job %s finished: %d images", job_id, done)
            try:
                status = await self.jobs.status(job_id)
            except Exception as exc:  # the rows and counters are final: only the record is missing
                log.error("gallery import job %s finished but NOT audited (%s)", job_id, type(exc).__name__)
            else:
                await audit_finished(self.audit, status)
        log.debug("gallery import job %s: %d newly done (%d done)", job_id, new, done)

    def _embed(self, todo: list[GalleryImportItem]) -> list[EmbedOutcome]:
        out = []
        for m in todo:
            out.append(self.photos.embed_path(Path(self._specs[m.job_id].root) / m.item))
            self.photos.cache.clear()  # each image is visited once: keeping outcomes would grow without bound
        return out


async def main(ctx: ServiceContext) -> None:
    s = ctx.settings
    redis = make_redis(s)
    analyzer = await asyncio.to_thread(FaceAnalyzer, s)
    # Created here too: a consumer subscribing first would have the broker auto-create it with too few
    # partitions.
    await ensure_topics(s, [spec_for(s, topics.GALLERY_IMPORT)])
    producer = make_producer(s, "gallery-import-audit")
    await producer.start()
    handler = ImportHandler(s, redis, analyzer, AuditLog(s, producer, redis))
    stage = Stage(s, STAGE, topics.GALLERY_IMPORT, GROUP_ID, handler, batch_size=BATCH, batch_wait_ms=200)
    ctx.on_stop(stage.stop)
    ctx.health.add_check("kafka", lambda: stage.ready)
    ctx.health.add_check("redis", redis.ping)
    log.info("gallery import worker ready: model %s, group %s", analyzer.embedder.model_id, GROUP_ID)
    try:
        await stage.run()
    finally:
        handler.close()
        await producer.stop()
        await redis.aclose()
