"""Fixtures for ingest integration tests: the street video, a live deployment, a crop reader.

Helpers are handed out as fixtures because test modules are not importable from each other here
(``--import-mode=importlib``).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiokafka import TopicPartition
from lfr.core import topics
from lfr.core.audit import AuditLog
from lfr.core.bus import make_consumer, make_producer
from lfr.core.config import Settings
from lfr.core.redis_client import make_redis
from lfr.core.serde import decode
from lfr.v1.crop_pb2 import FaceCrop


@pytest.fixture
def street_video(shared_faces: Path) -> Path:
    video = shared_faces / "facenet_pytorch_samples" / "video" / "video.mp4"
    if not video.is_file():
        pytest.skip(f"{video} not found (shared face data incomplete)")
    return video


async def _live_deployment(settings: Settings) -> str:
    """Create, authorise and start a deployment through the real store (audited), as an operator would."""
    from lfr.vision import find_card
    from lfr.watchlist.deployments import DeploymentSpec, DeploymentStore

    redis = make_redis(settings)
    producer = make_producer(settings, "test-setup")
    await producer.start()
    try:
        store = DeploymentStore(settings, redis, AuditLog(settings, producer, redis))
        now = datetime.now(UTC)
        spec = DeploymentSpec(
            name="ingest test",
            location="test bench",
            purpose="integration test of the ingest worker",
            starts_at=now - timedelta(minutes=1),
            ends_at=now + timedelta(hours=1),
            authorising_officer="Supt Test",
            watchlist_ids=["wl-ingest-test"],
        )
        dep = await store.create(spec, "test", find_card(settings.models_dir, settings.models.embedder))
        await store.authorise(dep.deployment_id, "Supt Test", "test")
        await store.start(dep.deployment_id, "test")
        return dep.deployment_id
    finally:
        await producer.stop()
        await redis.aclose()


async def _read_crops(
    settings: Settings, deployment_id: str, expect: int, timeout_s: float = 20.0
) -> list[FaceCrop]:
    """Every crop of ``deployment_id`` on lfr.crops.v1 (all partitions, from the beginning)."""
    consumer = make_consumer(settings, group_id=None, client_suffix="test-read")
    await consumer.start()
    try:
        parts = consumer.partitions_for_topic(topics.CROPS) or set()
        tps = [TopicPartition(topics.CROPS, p) for p in sorted(parts)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        found: dict[str, FaceCrop] = {}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while len(found) < expect and loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for r in records:
                    crop = decode(FaceCrop, r.value)
                    if crop.deployment_id == deployment_id:
                        assert r.key == crop.camera_id.encode(), "crops are keyed by camera_id"
                        found[crop.crop_id] = crop
        return list(found.values())
    finally:
        await consumer.stop()


@pytest.fixture
def live_deployment():  # type: ignore[no-untyped-def]
    return _live_deployment


@pytest.fixture
def read_crops():  # type: ignore[no-untyped-def]
    return _read_crops
