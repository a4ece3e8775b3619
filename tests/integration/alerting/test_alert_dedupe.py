"""Hits -> alerts on the real stack: dedupe per (deployment, subject, window) survives duplicates and
redeliveries, each alert is created once and later revisions only ever go up.

1,000 hit records for 50 subjects in 2 deployments (some hit ids repeated, as a re-run embedder would),
then a third of them redelivered three more times, all produced to lfr.hits.v1 and processed by the
alerting service running in-process on its real Stage.
"""

from __future__ import annotations

import json
import random
import uuid
from collections import defaultdict
from dataclasses import dataclass, field

import pytest
from alerting_support import (
    ALERT_MIRRORS,
    ALERT_TOPICS,
    AlertTail,
    HitMaker,
    HitProducer,
    alerting_running,
    settings_with,
)

from lfr.alerting.dedupe import alert_id_for, window_start_ms
from lfr.alerting.store import AlertStore
from lfr.core import stats, topics
from lfr.core.config import Settings
from lfr.core.redis_client import make_redis
from lfr.core.serde import decode
from lfr.core.timeutil import ms_from_ts, now_ms
from lfr.v1.dead_letter_pb2 import DeadLetter
from lfr.v1.hit_pb2 import Hit

pytestmark = pytest.mark.integration

WINDOW_S = 60


@dataclass
class Expected:
    hits: dict[str, Hit] = field(default_factory=dict)  # distinct hit id -> first copy

    @property
    def count(self) -> int:
        return len(self.hits)

    @property
    def best(self) -> Hit:
        best: Hit | None = None
        for h in self.hits.values():  # insertion order = topic order; ties keep the first
            if best is None or h.score > best.score:
                best = h
        assert best is not None
        return best


async def _build_hits(maker: HitMaker, deployments: list[str], rng: random.Random) -> list[Hit]:
    base = (now_ms() // (WINDOW_S * 1000)) * WINDOW_S * 1000 - 10 * WINDOW_S * 1000
    subjects = [(deployments[i % 2], f"subject-{i:02d}") for i in range(50)]
    originals: list[Hit] = []
    for i in range(850):
        dep, subject = rng.choice(subjects)
        originals.append(
            await maker.hit(
                dep,
                subject,
                crop_id=f"crop-{i}",
                camera_id=f"cam-{rng.randrange(4)}",
                captured_ms=base + rng.randrange(0, 150_000),  # spans three windows
                score=round(rng.uniform(0.6, 0.99), 4),
                category=rng.choice(["wanted", "missing"]) if subject < "subject-25" else "wanted",
            )
        )
    # The same crop matched again (e.g. the embedder re-ran a batch): same hit id, fresh probe nonce.
    records = list(originals)
    for _ in range(150):
        h = rng.choice(originals)
        again = Hit()
        again.CopyFrom(h)
        again.probe.CopyFrom(await maker.seal(maker.jpeg, h.crop_id, h.deployment_id))
        records.insert(rng.randrange(len(records) + 1), again)
    return records


async def test_thousand_hits_make_exactly_the_expected_alerts(stack_settings: Settings) -> None:
    settings = settings_with(stack_settings, alerting={"dedupe_window_s": WINDOW_S})
    tag = uuid.uuid4().hex[:6]
    deployments = [f"dedupe-a-{tag}", f"dedupe-b-{tag}"]
    rng = random.Random(7)
    maker = HitMaker(settings)
    records = await _build_hits(maker, deployments, rng)
    assert len(records) == 1000
    redelivered = rng.sample(records, 333) * 3
    rng.shuffle(redelivered)

    expected: dict[str, Expected] = defaultdict(Expected)
    for h in records:
        aid = alert_id_for(h, ms_from_ts(h.captured_at), WINDOW_S)
        expected[aid].hits.setdefault(h.hit_id, h)
    subjects_seen = {(h.deployment_id, h.subject_id) for h in records}
    assert len(subjects_seen) == 50 and len(expected) > 100  # several windows per subject

    async with AlertTail(settings, ALERT_TOPICS) as tail, AlertTail(settings, ALERT_MIRRORS) as mirror:
        async with alerting_running(settings), HitProducer(settings) as producer:
            await producer.send(records[:500])
            garbage = await producer.send_raw(b"\xff\x00 not a hit", key=deployments[0].encode())
            await producer.send(records[500:])
            await producer.send(redelivered)

            def finished() -> bool:
                last: dict[str, int] = {}
                for _, a in tail.alerts(set(deployments)):
                    last[a.alert_id] = max(last.get(a.alert_id, 0), a.hit_count)
                return all(last.get(aid, 0) >= e.count for aid, e in expected.items())

            await tail.wait_until(finished, 90, "every alert at its final hit count")
            n_alert_records = len(tail.records)
            await mirror.wait_until(
                lambda: len(mirror.records) >= n_alert_records, 15, "the JSON mirror to catch up"
            )

        alerts = [a for _, a in tail.alerts(set(deployments))]

    # Each alert is raised once on lfr.alerts.v1; its later revisions only on lfr.alert-updates.v1.
    raised = [a.alert_id for _, a in tail.alerts(set(deployments), topic=topics.ALERTS)]
    assert sorted(raised) == sorted(expected), "each expected alert_id exactly once on lfr.alerts.v1"
    updates = tail.alerts(set(deployments), topic=topics.ALERT_UPDATES)
    assert updates and {a.alert_id for _, a in updates} <= set(expected)
    mirror_raised = [
        d["alert_id"]
        for (_, v), t in zip(mirror.records, mirror.record_topics, strict=True)
        if t == topics.ALERTS_JSON and (d := json.loads(v))["deployment_id"] in deployments
    ]
    assert sorted(mirror_raised) == sorted(expected), "the JSON mirror raises each alert once too"

    # Per alert, revisions only go up and no revision appears twice across both topics.
    by_id: dict[str, list[int]] = defaultdict(list)
    for a in alerts:
        by_id[a.alert_id].append(a.revision)
    assert set(by_id) == set(expected), "alert ids differ from those the window math predicts"
    for aid, revs in by_id.items():
        assert revs == sorted(revs) and len(revs) == len(set(revs)), f"alert {aid} revisions {revs}"

    final = {a.alert_id: a for a in sorted(alerts, key=lambda a: a.revision)}  # highest revision wins
    for aid, e in expected.items():
        a = final[aid]
        best = e.best
        assert a.hit_count == e.count and a.revision == e.count
        assert a.best_hit_id == best.hit_id
        assert abs(a.best_score - best.score) < 1e-6
        assert set(a.camera_ids) == {h.camera_id for h in e.hits.values()}
        assert ms_from_ts(a.first_seen) == min(ms_from_ts(h.captured_at) for h in e.hits.values())
        assert ms_from_ts(a.last_seen) == max(ms_from_ts(h.captured_at) for h in e.hits.values())
        assert ms_from_ts(a.window_start) == window_start_ms(ms_from_ts(best.captured_at), WINDOW_S)
        assert a.subject.subject_id == best.subject_id and a.deployment_id == best.deployment_id

    # The JSON mirror carries the same (id, revision) pairs.
    mirrored = {
        (d["alert_id"], int(d["revision"]))
        for d in (json.loads(v) for _, v in mirror.records)
        if d.get("deployment_id") in deployments
    }
    assert mirrored == {(a.alert_id, a.revision) for a in alerts}

    # Redis holds one record per alert; the alert counters count each alert once.
    redis = make_redis(settings)
    try:
        store = AlertStore(settings, redis)
        for dep in deployments:
            n_expected = sum(1 for e in expected.values() if e.best.deployment_id == dep)
            assert await store.count(dep) == n_expected
            totals = await stats.totals(redis, settings, dep)
            assert totals.get(stats.ALERTS) == n_expected
            per_cat = sum(v for k, v in totals.items() if k.startswith("alerts:category:"))
            assert per_cat == n_expected
        listed = await store.list(deployments[0], limit=1000)
        assert [s.last_seen for s in listed] == sorted((s.last_seen for s in listed), reverse=True)
        probe = await store.probe(listed[0].alert_id)
        assert probe is not None and probe[1] and probe[2] == deployments[0]
    finally:
        await redis.aclose()

    # The undecodable record went to the dead-letter topic, without its payload.
    async with AlertTail(settings, topics.DEADLETTER) as dead:
        await dead.wait_until(lambda: len(dead.records) > 0, 10, "dead letters")
        await dead.wait_until(
            lambda: any(
                (d.stage, d.source_partition, d.source_offset)
                == ("alerting", garbage.partition, garbage.offset)
                for d in (decode(DeadLetter, v) for _, v in dead.records)
            ),
            15,
            "the undecodable hit's dead letter",
        )
        letters = [decode(DeadLetter, v) for _, v in dead.records]
    mine = [d for d in letters if d.stage == "alerting" and d.source_offset == garbage.offset]
    assert mine and mine[0].payload == b"" and mine[0].reason == "undecodable"
