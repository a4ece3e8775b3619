"""Ingest's camera reports reach lfr.camera-stats.v1, and a broker that is away never blocks the caller."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid

import pytest
from aiokafka import TopicPartition

from lfr.core import topics
from lfr.core.bus import ensure_topics, make_consumer
from lfr.core.config import Settings
from lfr.ingest.reports import CameraReporter

pytestmark = pytest.mark.integration


async def _reports_of(settings: Settings, camera_id: str) -> list[dict[str, object]]:
    consumer = make_consumer(settings, group_id=None, client_suffix="test-reports")
    await consumer.start()
    try:
        parts = consumer.partitions_for_topic(topics.CAMERA_STATS) or set()
        tps = [TopicPartition(topics.CAMERA_STATS, p) for p in sorted(parts)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        out: list[dict[str, object]] = []
        while True:
            batch = await consumer.getmany(timeout_ms=1500, max_records=10_000)
            if not batch:
                return out
            for recs in batch.values():
                out += [json.loads(r.value) for r in recs if r.key == camera_id.encode()]
    finally:
        await consumer.stop()


async def test_reports_carry_the_counts_since_the_previous_one(settings_for) -> None:  # type: ignore[no-untyped-def]
    settings: Settings = settings_for()
    await ensure_topics(settings)
    cam = f"cam-{uuid.uuid4().hex[:6]}"
    reporter = CameraReporter(settings)
    try:
        reporter.note(cam, faces=4, crops=2)
        doc = {
            "camera_id": cam,
            "deployment_id": "dep-r",
            "frames_in": 30,
            "frames_analysed": 6,
            "connected": True,
        }
        assert await reporter.send([doc], replica=1)
        reporter.note(cam, faces=1, crops=1)
        assert await reporter.send([{**doc, "frames_in": 55, "frames_analysed": 11}], replica=1)
    finally:
        await reporter.close()
    got = await _reports_of(settings, cam)
    assert [(r["frames"], r["analysed"], r["faces"], r["crops"]) for r in got] == [
        (30, 6, 4, 2),
        (25, 5, 1, 1),
    ]
    assert all(r["deployment_id"] == "dep-r" and r["replica"] == 1 for r in got)


async def test_a_broker_that_is_away_never_blocks_the_status_loop(settings_for) -> None:  # type: ignore[no-untyped-def]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings: Settings = settings_for(kafka={"bootstrap_servers": f"127.0.0.1:{port}"})
    reporter = CameraReporter(settings)
    reporter.note("cam-away", faces=2, crops=1)
    doc = {"camera_id": "cam-away", "frames_in": 10, "frames_analysed": 2}
    t0 = time.monotonic()
    for _ in range(3):
        reporter.submit([doc], replica=0)
    assert time.monotonic() - t0 < 0.1
    await asyncio.sleep(0.2)
    t1 = time.monotonic()
    await reporter.close()
    assert time.monotonic() - t1 < 5
    # Nothing was sent: the counts wait for the next report.
    (pending,) = reporter.reports([doc], replica=0, now_ms=0)
    assert (pending["frames"], pending["faces"], pending["crops"]) == (10, 2, 1)
