"""Real footage through the real pipeline: enrol Lin-Manuel Miranda (and Alex Lacamoire), play the clip.

The ingest worker publishes best-shot crops of `short_hamilton_clip.mp4` to the real broker; the real
embedder stage (same handler as `lfr embed`) searches the watchlist in Milvus Lite at the card threshold.
Ground truth comes from the clip itself (30 fps, 275 frames): he is on stage in frames 0-19 and 81-211;
frames 20-79 show a different man in profile, and from frame 213 on the audience (not enrolled) is shown.
Every hit must come from his frames, and there must be hits.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from aiokafka import TopicPartition

from lfr.core import stats, topics
from lfr.core.bus import make_consumer
from lfr.core.crypto import CropKeyring
from lfr.core.redis_client import make_redis
from lfr.core.serde import SerdeError, decode
from lfr.core.stage import Stage
from lfr.embedder.service import build_handler
from lfr.ingest.cameras import Camera
from lfr.ingest.pipeline import IngestPipeline
from lfr.ingest.publisher import CropPublisher
from lfr.ingest.service import DeploymentGate, IngestWorker
from lfr.v1.crop_pb2 import FaceCrop
from lfr.v1.hit_pb2 import Hit
from lfr.vision import load_embedder
from lfr.watchlist.compose import open_services
from lfr.watchlist.store import WatchlistStore

pytestmark = [pytest.mark.integration]

HIS_FRAMES = [(0, 19), (81, 211)]  # frames 16-19 checked by eye: still him, the cut comes at frame 20
OTHERS_FRAMES = [(20, 79), (213, 10_000)]


def _in(ranges: list[tuple[int, int]], frame: int) -> bool:
    return any(lo <= frame <= hi for lo, hi in ranges)


async def _ingest(settings, deployment_id: str, clip: Path) -> None:  # type: ignore[no-untyped-def]
    redis = make_redis(settings)
    try:
        pipeline = await asyncio.to_thread(IngestPipeline.from_settings, settings)
        publisher = CropPublisher(settings)
        worker = IngestWorker(
            settings,
            [
                Camera(
                    camera_id=f"hamilton-{uuid.uuid4().hex[:6]}", deployment_id=deployment_id, url=str(clip)
                )
            ],
            pipeline,
            CropKeyring(settings).current,
            publisher,
            gate=DeploymentGate(settings, redis),
            redis=redis,
        )
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        source = next(iter(worker.sources.values()))
        async with asyncio.timeout(120):
            while not (source.finished and len(source.queue) == 0 and publisher.pending == 0):  # noqa: ASYNC110
                await asyncio.sleep(0.1)
            await asyncio.sleep(1.0)  # last analysis and end-of-stream flush of open tracks
            while publisher.in_flight or publisher.pending:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        stop.set()
        await task
    finally:
        await redis.aclose()


async def _records(settings, topic: str, cls, deployment_id: str):  # type: ignore[no-untyped-def]
    consumer = make_consumer(settings, group_id=None, client_suffix="test-read")
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        out = []
        while True:
            batch = await consumer.getmany(timeout_ms=1000)
            if not batch:
                return out
            for recs in batch.values():
                for r in recs:
                    try:
                        msg = decode(cls, r.value)
                    except SerdeError:
                        continue  # other tests put deliberately corrupt records on shared topics
                    if msg.deployment_id == deployment_id:
                        out.append(msg)
    finally:
        await consumer.stop()


async def test_enrolled_performer_is_found_and_nobody_else(
    settings_for, face_data: Path, models_dir: Path, live_deployment, record_property
) -> None:
    demo = face_data / "face_recognition_demo"
    settings = settings_for(models={"dir": models_dir}, ingest={"queue_frames": 64})
    wl = f"wl-ham-{uuid.uuid4().hex[:6]}"
    async with open_services(settings) as services:
        svc = services.subjects
        summary = await svc.import_subjects(demo / "enroll", wl, "pytest", progress=False)
        # The enrolment folder holds one folder per person: him and his music director.
        assert summary.accepted == 2, summary.as_dict()
        subjects = {s.display_name: s.subject_id for s in await svc.list_subjects(wl)}
    him = subjects["lin manuel miranda"]
    deployment_id = await live_deployment(settings, (wl,))

    await _ingest(settings, deployment_id, demo / "video" / "short_hamilton_clip.mp4")
    crops = {c.crop_id: c for c in await _records(settings, topics.CROPS, FaceCrop, deployment_id)}
    assert crops, "ingest published no crops of the clip"

    redis = make_redis(settings)
    embedder = await asyncio.to_thread(load_embedder, settings)
    store = WatchlistStore(settings, embedder.card)
    stage = Stage(
        settings,
        "test-embedder",
        topics.CROPS,
        f"ham-{uuid.uuid4().hex[:6]}",
        build_handler(settings, redis, embedder, store),
        batch_size=64,
    )
    runner = asyncio.create_task(stage.run())
    try:
        async with asyncio.timeout(120):
            while True:  # the embedder's counters, not an event, say when every crop was decided
                done = (await stats.totals(redis, settings, deployment_id)).get(stats.FACES_ANALYSED, 0)
                if done >= len(crops):
                    break
                await asyncio.sleep(0.2)
    finally:
        stage.stop()
        await runner
        store.close()
        await redis.aclose()

    hits = await _records(settings, topics.HITS, Hit, deployment_id)
    frames = sorted(crops[h.crop_id].frame_seq for h in hits)
    record_property("crops", len(crops))
    record_property("hit_frames", frames)
    print(f"{len(crops)} crops, {len(hits)} hits at frames {frames}")
    assert hits, "the enrolled performer was not found"
    assert {h.subject_id for h in hits} == {him}
    assert all(_in(HIS_FRAMES, f) for f in frames), f"hits outside his frames: {frames}"
    assert not any(_in(OTHERS_FRAMES, f) for f in frames)
    assert all(h.rank == 1 and embedder.card.is_match(h.distance) for h in hits)


async def _run_embedder(settings, handler, until) -> None:  # type: ignore[no-untyped-def]
    """The real embedder stage in a fresh consumer group until ``until()`` holds."""
    stage = Stage(
        settings, "test-embedder", topics.CROPS, f"emb-{uuid.uuid4().hex[:6]}", handler, batch_size=64
    )
    runner = asyncio.create_task(stage.run())
    try:
        async with asyncio.timeout(120):
            while not await until():  # noqa: ASYNC110 (polls Redis counters, not a local event)
                await asyncio.sleep(0.2)
    finally:
        stage.stop()
        await runner


@pytest.mark.long
async def test_crops_past_their_key_ttl_are_counted_expired_once(
    settings_for, face_data: Path, models_dir: Path, live_deployment
) -> None:
    """Real ingest seals crops under keys that live 3 s; the real embedder meets them later and reads none.

    A second consumer group then replays the same crops, as a redelivery after a crash would: the per-crop
    markers keep the deployment's counters where they were.
    """
    demo = face_data / "face_recognition_demo"
    settings = settings_for(
        models={"dir": models_dir}, ingest={"queue_frames": 64}, crypto={"key_rotation_s": 1, "key_ttl_s": 3}
    )
    deployment_id = await live_deployment(settings)
    await _ingest(settings, deployment_id, demo / "video" / "short_hamilton_clip.mp4")
    crops = await _records(settings, topics.CROPS, FaceCrop, deployment_id)
    assert crops, "ingest published no crops of the clip"
    await asyncio.sleep(3.5)  # every crop key has now expired from Redis

    redis = make_redis(settings)
    embedder = await asyncio.to_thread(load_embedder, settings)
    store = WatchlistStore(settings, embedder.card)
    seen: list[int] = []
    inner = build_handler(settings, redis, embedder, store)

    async def handler(records):  # type: ignore[no-untyped-def]
        seen.extend(1 for r in records if decode(FaceCrop, r.value).deployment_id == deployment_id)
        return await inner(records)

    async def all_expired() -> bool:
        return (await stats.totals(redis, settings, deployment_id)).get(stats.CROPS_EXPIRED, 0) >= len(crops)

    try:
        await _run_embedder(settings, handler, all_expired)
        first = await stats.totals(redis, settings, deployment_id)
        seen.clear()

        async def replayed() -> bool:
            return len(seen) >= len(crops)

        await _run_embedder(settings, handler, replayed)
        again = await stats.totals(redis, settings, deployment_id)
    finally:
        store.close()
        await redis.aclose()

    print(f"{len(crops)} crops, all expired: {first}")
    # The ingest side counts the people it saw (tracks_eligible); the embedder analysed nothing.
    embedder_counts = {k: v for k, v in first.items() if not k.startswith("tracks_")}
    assert embedder_counts == {stats.CROPS_EXPIRED: len(crops)}, "nothing was analysed: the keys were gone"
    assert first.get(stats.TRACKS_ELIGIBLE, 0) >= 1
    assert again == first, "a replay of the same crops must not count them twice"
    assert await _records(settings, topics.HITS, Hit, deployment_id) == []
