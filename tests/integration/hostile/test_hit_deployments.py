"""Hits naming a deployment that does not exist, never started or has finished reach the real alerting
service on the real broker: each becomes a DeadLetter with its reason and no alert, while a hit of a running
deployment behind them, and one seen before its deployment stopped, are alerted."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from alerting_support import ALERT_TOPICS, AlertTail, HitMaker, HitProducer, alerting_running, settings_with

from lfr.alerting.hit_gate import FINISHED, NOT_STARTED, UNKNOWN
from lfr.core import topics
from lfr.core.config import Settings
from lfr.core.serde import decode
from lfr.core.timeutil import now_ms
from lfr.v1.dead_letter_pb2 import DeadLetter
from lfr.watchlist.deployments import DeploymentStatus, DeploymentStore

pytestmark = pytest.mark.integration


async def _set(maker: HitMaker, deployment_id: str, **changes: object) -> None:
    """Registers the deployment, then changes its record as a stop (or an unfinished set-up) leaves it."""
    await maker.register(deployment_id)
    store = DeploymentStore(maker.settings, maker.keys.redis)
    dep = await store.require(deployment_id)
    await store._save(dep.model_copy(update=changes))


async def test_hits_of_unknown_unstarted_and_finished_deployments_are_dead_lettered(
    stack_settings: Settings,
) -> None:
    settings = settings_with(stack_settings)
    tag = uuid.uuid4().hex[:8]
    maker = HitMaker(settings)
    live, draft, stopped = f"live-{tag}", f"draft-{tag}", f"stopped-{tag}"
    stop_ms = now_ms() - 60_000
    stop_at = datetime.fromtimestamp(stop_ms / 1000, UTC)
    await _set(maker, draft, status=DeploymentStatus.AUTHORISED, started_at=None)
    await _set(maker, stopped, status=DeploymentStatus.STOPPED, stopped_at=stop_at)
    nowhere = await maker.hit(live, "s-1", f"crop-u-{tag}")
    nowhere.deployment_id = f"nowhere-{tag}"  # no record names it; refused before its probe is read
    hostile = [
        (nowhere, UNKNOWN),
        (await maker.hit(draft, "s-1", f"crop-d-{tag}"), NOT_STARTED),
        (await maker.hit(stopped, "s-1", f"crop-s-{tag}", captured_ms=stop_ms + 1000), FINISHED),
    ]
    in_time = await maker.hit(stopped, "s-2", f"crop-t-{tag}", captured_ms=stop_ms - 1000)
    good = await maker.hit(live, "s-3", f"crop-l-{tag}")

    async with (
        AlertTail(settings, ALERT_TOPICS) as tail,
        AlertTail(settings, topics.DEADLETTER) as letters,
        alerting_running(settings),
        HitProducer(settings) as producer,
    ):
        await producer.send([h for h, _ in hostile] + [in_time, good])
        await tail.wait_until(lambda: len(tail.alerts({live, stopped})) >= 2, 30, "the two good alerts")

        def refused() -> dict[str, DeadLetter]:
            out = {}
            for _, value in letters.records:
                d = decode(DeadLetter, value)
                mine = tag in d.key.decode(errors="replace")  # other tests' refused hits share the topic
                if mine and d.source_topic == topics.HITS and d.reason in (UNKNOWN, NOT_STARTED, FINISHED):
                    out[d.key.decode()] = d  # records on lfr.hits.v1 are keyed by deployment id
            return out

        await letters.wait_until(lambda: len(refused()) >= 3, 30, "three dead letters")
        await asyncio.sleep(1.0)  # an alert wrongly raised for a refused hit would arrive now
    got = {(d.reason, dep) for dep, d in refused().items()}
    assert got == {(reason, h.deployment_id) for h, reason in hostile}
    assert all(d.payload == b"" and dep in d.error_type for dep, d in refused().items())
    alerted = {(a.deployment_id, a.subject.subject_id) for _, a in tail.alerts()}
    assert {(live, "s-3"), (stopped, "s-2")} <= alerted
    assert not alerted & {(h.deployment_id, h.subject_id) for h, _ in hostile}
