"""Faults while the pipeline runs: every service killed, the broker, Redis and Milvus away, a frozen worker,
a flood of crops. Each scenario asserts what docs/reliability.md promises: no alert lost (every injected
matching crop counted in its alert), each alert id once on lfr.alerts.v1 after de-duplication by id, no hit
for a stranger, the audit chain verifying, and recovery within the scenario's stated bound. The last test
checks that no stranger's crop of any scenario can be opened once its key's TTL has passed.

The scenarios share one pipeline (tests/faults/harness.py) and run in file order; each has its own
deployment, so their alerts and counters never mix.
"""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

import pytest
from faults_harness import KEY_TTL_S, Pipeline, Scenario

from lfr.core import topics
from lfr.core.crypto import CropKeyring, KeyExpired
from lfr.core.redis_client import key as rkey
from lfr.core.timeutil import ms_from_ts, now_ms

pytestmark = [pytest.mark.faults, pytest.mark.timeout(420)]

MILVUS_OUTAGE_S = 30.0


@pytest.mark.parametrize(
    ("service", "bound_s"),
    [("embedder", 45.0), ("alerting", 45.0), ("ingest", 30.0)],
)
async def test_service_sigkilled_and_restarted(pipeline: Pipeline, service: str, bound_s: float) -> None:
    restarted_ms = 0

    async def fault(sc: Scenario) -> dict[str, Any]:
        nonlocal restarted_ms
        feeding = asyncio.create_task(pipeline.inject_during(sc, 5.0))
        await pipeline.first_output(sc, service)  # the service is working on this scenario's records
        pipeline.signal_service(service, signal.SIGKILL)
        await asyncio.sleep(1.0)  # dead while crops keep arriving
        pipeline.start_service(service)
        sc.ended()
        restarted_ms = now_ms()
        await feeding
        return {}

    outcome = await pipeline.run(f"kill-{service}", fault, bound_s)
    if service == "ingest":
        # Ingest holds no state worth keeping (frames are live); what matters is that the footage is
        # analysed again: the performer is found in frames captured after the restart.
        assert pipeline.ledger is not None
        t0 = time.monotonic()
        while not any(
            ms_from_ts(h.captured_at) >= restarted_ms
            for h in pipeline.ledger.hits[pipeline.camera_deployment]
        ):
            assert time.monotonic() - t0 < 60, "no hit from footage captured after ingest restarted"
            pipeline.assert_services_alive()
            await asyncio.sleep(0.5)
        outcome.extra["footage_hit_after_restart_s"] = round((now_ms() - restarted_ms) / 1000, 1)
        print(outcome.line(), flush=True)


async def test_broker_killed_and_restarted(pipeline: Pipeline) -> None:
    async def fault(sc: Scenario) -> dict[str, Any]:
        await pipeline.first_output(sc, "embedder")  # mid-stream: some crops searched, others not yet
        pipeline.kill_component("kafka")
        # Crops produced while the broker is down wait in the producer and are delivered after it returns.
        feeding = asyncio.create_task(pipeline.inject_during(sc, 5.0))
        await asyncio.sleep(5.0)
        answer_s = await asyncio.to_thread(pipeline.restart_component, "kafka")
        sc.ended()
        await asyncio.wait_for(feeding, 120)
        return {"broker_answered_s": round(answer_s, 1)}

    await pipeline.run("broker", fault, bound_s=60.0)


async def test_redis_killed_and_restarted(pipeline: Pipeline) -> None:
    async def fault(sc: Scenario) -> dict[str, Any]:
        await pipeline.first_output(sc, "alerting")  # the alerts exist: their dedupe state must survive
        before = await pipeline.redis.dbsize()
        pipeline.kill_component("redis")
        feeding = asyncio.create_task(pipeline.inject_during(sc, 5.0))
        await asyncio.sleep(5.0)
        answer_s = await asyncio.to_thread(pipeline.restart_component, "redis")
        sc.ended()
        await feeding
        after = await pipeline.redis.dbsize()
        # The append-only file brought back the deployments, dedupe windows and alert state.
        assert after >= before * 0.9, (before, after)
        return {"redis_answered_s": round(answer_s, 1), "keys_before": before, "keys_after": after}

    await pipeline.run("redis", fault, bound_s=45.0)


async def test_milvus_unavailable_for_30s(pipeline: Pipeline) -> None:
    group = pipeline.settings.embedder.group_id
    committed: dict[int, int] = {}

    async def fault(sc: Scenario) -> dict[str, Any]:
        nonlocal committed
        await pipeline.first_output(sc, "embedder")
        pipeline.kill_component("milvus", signal.SIGTERM)
        assert pipeline.ledger is not None
        hits_at_outage = len(pipeline.ledger.hits[sc.deployment_id])
        await pipeline.inject_during(sc, 3.0, every_s=3.0)  # a batch past its search may still commit
        committed = await pipeline.committed(group, topics.CROPS)
        await pipeline.inject_during(sc, MILVUS_OUTAGE_S - 3.0, every_s=3.0)
        # No search ran while Milvus was away: no hit appeared for the crops injected during the outage
        # (a batch already past its search when the server went could still land, hence the margin), and
        # the embedder committed nothing, so a restart meanwhile would have lost nothing either.
        assert len(pipeline.ledger.hits[sc.deployment_id]) <= hits_at_outage + 2
        assert await pipeline.committed(group, topics.CROPS) == committed, "committed while Milvus was away"
        answer_s = await asyncio.to_thread(pipeline.restart_component, "milvus")
        return {"milvus_answered_s": round(answer_s, 1)}

    # The stage retries every 10 s at most once a failure has lasted (docs/stream-processing.md).
    outcome = await pipeline.run("milvus", fault, bound_s=25.0)
    after = await pipeline.committed(group, topics.CROPS)
    assert sum(after.values()) > sum(committed.values()), "the embedder did not commit again"
    outcome.extra["committed_during_outage"] = sum(committed.values())
    outcome.extra["committed_after"] = sum(after.values())
    print(outcome.line(), flush=True)


async def test_worker_frozen_past_its_session_timeout(pipeline: Pipeline) -> None:
    """Two embedders; one is frozen long past its session timeout while it holds partitions: the other
    takes them over while it is stopped, and the frozen one, continued, rejoins the group."""
    frozen_s = 25.0  # session timeout 6 s, then the embedded broker's rebalance (stream-processing.md)
    partitions = pipeline.settings.kafka.crops_partitions
    pipeline.start_service("embedder-2")
    try:
        await pipeline.wait_assigned(("embedder", "embedder-2"), partitions)

        async def fault(sc: Scenario) -> dict[str, Any]:
            await pipeline.first_output(sc, "embedder")
            held = await pipeline.assigned("embedder")
            assert 0 < held < partitions, f"the worker to freeze holds {held} of {partitions} partitions"
            t0 = time.monotonic()
            pipeline.signal_service("embedder", signal.SIGSTOP)
            taken_over_s = None
            try:
                while time.monotonic() - t0 < frozen_s:
                    await pipeline.inject(sc, 1)
                    if taken_over_s is None and await pipeline.assigned("embedder-2") == partitions:
                        taken_over_s = round(time.monotonic() - t0, 1)  # the survivor holds every partition
                    await asyncio.sleep(1.0)
            finally:
                pipeline.signal_service("embedder", signal.SIGCONT)
                sc.ended()
            assert taken_over_s is not None, "the frozen worker's crops waited for it: nobody took over"
            return {"frozen_s": frozen_s, "frozen_held": held, "taken_over_after_s": taken_over_s}

        await pipeline.run("sigstop", fault, bound_s=45.0)
    finally:
        assert pipeline.stop_service("embedder-2") == 0, pipeline.log_tail("embedder-2")


async def test_crops_topic_flooded(pipeline: Pipeline) -> None:
    each = 60  # per person: 240 crops in about a second, far faster than one embedder drains them

    async def fault(sc: Scenario) -> dict[str, Any]:
        t0 = time.monotonic()
        await pipeline.inject(sc, each)
        produce_s = time.monotonic() - t0
        backlog = sc.total() - await pipeline.decided(sc.deployment_id)
        assert backlog > sc.total() // 2, "the embedder kept up: the flood did not build a backlog"
        return {"flood": sc.total(), "produced_in_s": round(produce_s, 1), "backlog": backlog}

    # Drained well inside the crop keys' TTL (KEY_TTL_S), or matching crops would expire unread.
    outcome = await pipeline.run("flood", fault, bound_s=60.0, before=0, after=0)
    outcome.extra["drain_crops_per_s"] = round(outcome.injected / outcome.recovery_s, 1)
    print(outcome.line(), flush=True)


async def test_no_strangers_crop_readable_after_its_key_ttl(pipeline: Pipeline) -> None:
    """Every stranger's crop of every scenario above (or of its own, when run alone) is unreadable."""
    if not any(sc.strangers for sc in pipeline.scenarios):
        sc = await pipeline.scenario("strangers")
        await pipeline.inject(sc, 2, people=("rose", "kit"))
    last = max(sc.last_stranger_at for sc in pipeline.scenarios if sc.strangers)
    await asyncio.sleep(max(0.0, last + KEY_TTL_S + 1 - time.monotonic()))
    fresh = CropKeyring(pipeline.settings)
    try:
        checked = 0
        for sc in pipeline.scenarios:
            for crop_id, (key_id, _camera) in sc.strangers.items():
                with pytest.raises(KeyExpired):
                    await fresh.lookup(key_id)
                assert not await fresh.redis.exists(rkey(pipeline.settings, "cropkey", key_id)), crop_id
                checked += 1
    finally:
        await fresh.aclose()
    print(
        f"[faults] {checked} stranger crops across {len(pipeline.scenarios)} scenarios: keys gone", flush=True
    )
