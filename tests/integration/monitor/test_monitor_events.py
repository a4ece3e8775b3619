"""The monitor raises operations events from its windows: a camera that stopped delivering frames and a
deployment whose alerts jumped, in Redis (for `lfr status`), on lfr.ops-events.v1 and as gauges."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import pytest
from aiokafka import TopicPartition
from prometheus_client import REGISTRY

from lfr.core import topics
from lfr.core.bus import ensure_topics, make_consumer, make_producer
from lfr.core.config import Settings
from lfr.core.redis_client import make_redis
from lfr.core.serde import encode
from lfr.monitor import records
from lfr.monitor.stage import Monitor
from lfr.v1.adjudication_pb2 import Adjudication, Outcome
from lfr.v1.alert_pb2 import Alert

pytestmark = pytest.mark.integration


async def _ops_events(settings: Settings, subjects: set[str]) -> list[dict[str, object]]:
    consumer = make_consumer(settings, group_id=None, client_suffix="test-ops")
    await consumer.start()
    try:
        tps = [
            TopicPartition(topics.OPS_EVENTS, p)
            for p in sorted(consumer.partitions_for_topic(topics.OPS_EVENTS) or ())
        ]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        out = []
        # Read to the end offsets: one fetch may stop short of the end on a topic other tests fill too.
        ends = await consumer.end_offsets(tps)
        deadline = time.monotonic() + 30
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            if time.monotonic() > deadline:
                raise AssertionError("lfr.ops-events.v1 not read to its end within 30 s")
            batch = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            for recs in batch.values():
                out += [json.loads(r.value) for r in recs]
        return [e for e in out if e["subject"] in subjects]
    finally:
        await consumer.stop()


async def test_silence_and_alert_rate_jump_raise_events(settings_for) -> None:
    tag = uuid.uuid4().hex[:6]
    # The busy camera reported a second before the monitor starts and must not turn silent while a loaded
    # machine starts the monitor's app, so silence takes 45 s here; quiet stopped 90 s ago.
    settings: Settings = settings_for(
        monitor={"app_id": f"mon-events-{tag}", "check_interval_s": 0.5, "silent_after_s": 45}
    )
    await ensure_topics(settings)
    quiet, busy, dep = f"cam-quiet-{tag}", f"cam-busy-{tag}", f"dep-{tag}"
    now = int(time.time() * 1000)
    producer = make_producer(settings, "test")
    await producer.start()
    try:
        for cam, at, frames in ((quiet, now - 90_000, 25), (quiet, now - 60_000, 0), (busy, now - 1_000, 25)):
            doc = {
                "camera_id": cam,
                "deployment_id": dep,
                "frames": frames,
                "analysed": 5,
                "faces": 2,
                "crops": 1,
            }
            await producer.send_and_wait(
                topics.CAMERA_STATS, json.dumps(doc).encode(), key=cam.encode(), timestamp_ms=at
            )
        for i in range(7):
            alert = Alert(alert_id=f"{tag}-{i}", deployment_id=dep)
            await producer.send_and_wait(
                topics.ALERTS, encode(alert), key=dep.encode(), timestamp_ms=now - 500
            )
        adj = Adjudication(
            adjudication_id=tag, alert_id=f"{tag}-0", deployment_id=dep, outcome=Outcome.OUTCOME_MATCH
        )
        await producer.send_and_wait(
            topics.ADJUDICATIONS, encode(adj), key=dep.encode(), timestamp_ms=now - 400
        )
    finally:
        await producer.stop()

    redis = make_redis(settings)
    stop = asyncio.Event()
    monitor = Monitor(settings, redis)
    task = asyncio.create_task(monitor.run(stop))
    try:
        kinds: dict[str, str] = {}
        deadline = time.monotonic() + 90
        # Other tests' events share the store: wait for this test's two subjects, not for any two.
        while time.monotonic() < deadline and not {quiet, dep} <= set(kinds):
            await asyncio.sleep(0.5)
            kinds = {str(e["subject"]): str(e["kind"]) for e in await records.read_events(redis, settings)}
        assert kinds.get(quiet) == "camera_silent", kinds
        assert kinds.get(dep) == "alert_rate_jump", kinds
        assert busy not in kinds

        cam_doc = await records.read_json(redis, records.camera_key(settings, quiet))
        assert cam_doc is not None and cam_doc["silent"] is True
        dep_doc = await records.read_json(redis, records.deployment_key(settings, dep))
        assert dep_doc is not None and dep_doc["jump"] is True
        # The seven alerts fall in one minute, which is the current or, past a minute boundary, the last one.
        assert max(dep_doc["alerts_current_minute"], dep_doc["alerts_last_minute"]) == 7, dep_doc
        assert {m["alerts"] for m in dep_doc["alerts_per_minute"]} == {7}, dep_doc
        assert dep_doc["outcomes"] == {"match": 1, "no_match": 0, "unable": 0}
        assert REGISTRY.get_sample_value("lfr_monitor_camera_silent", {"camera": quiet}) == 1
        assert REGISTRY.get_sample_value("lfr_monitor_camera_silent", {"camera": busy}) == 0
        assert REGISTRY.get_sample_value("lfr_monitor_alert_rate_jump", {"deployment": dep}) == 1
        published = {(e["subject"], e["kind"]) for e in await _ops_events(settings, {quiet, dep})}
        assert published == {(quiet, "camera_silent"), (dep, "alert_rate_jump")}
    finally:
        stop.set()
        await task
        await redis.aclose()
