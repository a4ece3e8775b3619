"""The alert API and live stream on the real stack: latency over 1,000 hits (to the topic and to SSE),
reads, images, adjudication (topic, audit, counters), dashboard, report, purge, and the console's files.

The alerting service and the API run in-process (one event loop with the measuring clients, so the figures
include that contention); the measurement prints median and p95.
"""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError
from alerting_support import (
    ALERT_TOPICS,
    AUDITOR_TOKEN,
    OFFICER,
    OPERATOR_TOKEN,
    AlertTail,
    ApiServer,
    FakeWatchlist,
    HitMaker,
    HitProducer,
    SseReader,
    alerting_running,
    api_running,
    face_jpeg,
    percentile,
    settings_with,
)
from typer.testing import CliRunner

from lfr.alerting.adjudication import Adjudicator
from lfr.alerting.cli import report_app
from lfr.alerting.dedupe import alert_id_for
from lfr.alerting.purge import make_purge_alerts
from lfr.alerting.store import AlertKeys, AlertStore
from lfr.core import stats, topics
from lfr.core.audit import chain_hash, read_all
from lfr.core.config import Settings, get_settings
from lfr.core.crypto import DeploymentAlertKeys, KeyExpired, probe_aad
from lfr.core.redis_client import make_redis
from lfr.core.serde import decode
from lfr.core.timeutil import ms_from_ts, now_ms
from lfr.v1.adjudication_pb2 import Adjudication, Outcome
from lfr.v1.alert_pb2 import AlertStatus
from lfr.v1.hit_pb2 import Hit

pytestmark = pytest.mark.integration

LATENCY_HITS = 1000


@dataclass
class Live:
    settings: Settings
    api: ApiServer
    watchlist: FakeWatchlist


@pytest.fixture(scope="module")
async def live(stack_settings: Settings) -> AsyncIterator[Live]:
    settings = settings_with(stack_settings, alerting={"dedupe_window_s": 300})
    watchlist = FakeWatchlist()
    async with alerting_running(settings), api_running(settings, watchlist) as api:
        yield Live(settings, api, watchlist)


async def test_latency_hit_to_alert_topic_and_live_stream(live: Live) -> None:
    dep = f"latency-{uuid.uuid4().hex[:6]}"
    maker = HitMaker(live.settings)
    sent_at: dict[str, float] = {}
    async with (
        live.api.client() as client,
        live.api.client(token=None) as anonymous,
        SseReader(client, f"/api/v1/deployments/{dep}/alerts/stream") as sse,
        SseReader(
            anonymous, f"/api/v1/deployments/{dep}/alerts/stream", params={"access_token": OPERATOR_TOKEN}
        ) as sse_query,
        AlertTail(live.settings, from_beginning=False) as tail,
        HitProducer(live.settings) as producer,
    ):
        assert sse.status == 200 and sse_query.status == 200
        assert sse.headers is not None and sse.headers["content-type"].startswith("text/event-stream")
        # Paced like a busy deployment (200 hits/s), so the figures are latency, not queueing of a burst.
        for i in range(0, LATENCY_HITS, 20):
            batch = [await maker.hit(dep, f"subject-{j}", f"crop-{j}") for j in range(i, i + 20)]
            t0 = time.monotonic()
            for h in batch:
                sent_at[alert_id_for(h, ms_from_ts(h.captured_at), 300)] = t0
            await producer.send(batch)
            await asyncio.sleep(0.1)

        await tail.wait_until(
            lambda: len({a.alert_id for _, a in tail.alerts({dep})}) >= LATENCY_HITS, 60, "1,000 alerts"
        )
        await tail.wait_until(
            lambda: len({d["alert"]["alert_id"] for _, d in sse.alert_events()}) >= LATENCY_HITS,
            30,
            "1,000 alerts on the live stream",
        )
        await tail.wait_until(
            lambda: len(sse_query.alert_events()) >= LATENCY_HITS, 30, "the query-token stream too"
        )

    topic_first: dict[str, float] = {}
    for t, a in tail.alerts({dep}):
        topic_first.setdefault(a.alert_id, t)
    sse_first: dict[str, float] = {}
    for t, d in sse.alert_events():
        sse_first.setdefault(d["alert"]["alert_id"], t)
    common = [aid for aid in sent_at if aid in topic_first and aid in sse_first]
    assert len(common) == LATENCY_HITS
    to_topic = [(topic_first[aid] - sent_at[aid]) * 1000 for aid in common]
    to_sse = [(sse_first[aid] - sent_at[aid]) * 1000 for aid in common]
    print(
        f"\nlatency over {len(common)} hits (ms): hit produced -> alert on lfr.alerts.v1 "
        f"median {percentile(to_topic, 0.5):.1f} p95 {percentile(to_topic, 0.95):.1f}; "
        f"-> SSE event median {percentile(to_sse, 0.5):.1f} p95 {percentile(to_sse, 0.95):.1f}"
    )
    assert sse.snapshots() and sse.snapshots()[0]["alerts"] == []
    assert percentile(to_sse, 0.95) < 2000, "the console must show an alert within 2 s of its hit"


async def test_reads_images_adjudication_dashboard_report_and_purge(live: Live) -> None:
    settings = live.settings
    dep = f"api-{uuid.uuid4().hex[:6]}"
    maker = HitMaker(settings)
    best_jpeg, other_jpeg = face_jpeg(501), face_jpeg(502)
    t = now_ms()
    hits = [
        await maker.hit(
            dep, "s-1", "crop-1", camera_id="cam-north", captured_ms=t - 2000, score=0.71, jpeg=other_jpeg
        ),
        await maker.hit(
            dep, "s-1", "crop-2", camera_id="cam-south", captured_ms=t - 1000, score=0.93, jpeg=best_jpeg
        ),
        await maker.hit(dep, "unknown-2", "crop-3", camera_id="cam-north", captured_ms=t, score=0.65),
    ]
    redis = make_redis(settings)
    async with (
        live.api.client() as op,
        live.api.client(token=AUDITOR_TOKEN) as auditor,
        live.api.client(token=None) as anonymous,
        live.api.client(token="not-a-token") as stranger,
        SseReader(op, f"/api/v1/deployments/{dep}/alerts/stream") as sse,
        AlertTail(settings, ALERT_TOPICS, from_beginning=False) as tail,
        HitProducer(settings) as producer,
    ):
        await producer.send(hits)
        await tail.wait_until(
            lambda: (
                {a.hit_count for _, a in tail.alerts({dep}) if a.subject.subject_id == "s-1"} >= {2}
                and any(a.subject.subject_id == "unknown-2" for _, a in tail.alerts({dep}))
            ),
            30,
            "both alerts",
        )

        # ---- reads
        r = await op.get("/api/v1/alerts", params={"deployment": dep})
        assert r.status_code == 200
        listed = r.json()["alerts"]
        assert [a["subject_id"] for a in listed] == ["unknown-2", "s-1"]  # newest sighting first
        s1 = next(a for a in listed if a["subject_id"] == "s-1")
        aid, other = s1["alert_id"], listed[0]["alert_id"]
        assert s1["hit_count"] == 2 and s1["camera_ids"] == ["cam-north", "cam-south"]
        assert s1["status"] == "pending" and abs(s1["best_score"] - 0.93) < 1e-6
        assert (await op.get("/api/v1/alerts", params={"deployment": dep, "status": "confirmed"})).json()[
            "alerts"
        ] == []

        detail = (await op.get(f"/api/v1/alerts/{aid}")).json()
        assert detail["subject_display_name"] == "Person s-1"
        assert (await auditor.get(f"/api/v1/alerts/{aid}")).json()["subject_display_name"] is None
        assert (await op.get(f"/api/v1/alerts/{other}")).json()["subject_display_name"] is None
        assert (await op.get(f"/api/v1/alerts/{'0' * 32}")).status_code == 404
        assert (await anonymous.get(f"/api/v1/alerts/{aid}")).status_code == 401
        assert (await stranger.get(f"/api/v1/alerts/{aid}")).status_code == 401
        assert (await op.get("/api/v1/alerts")).status_code == 422
        ttl = await redis.ttl(AlertKeys(settings).alert(aid))
        retention_s = settings.alerting.retention_days * 24 * 3600
        assert retention_s - 60 < ttl <= retention_s, "alert records must expire with the retention period"
        assert (await op.get("/api/v1/console/session")).json() == {"name": OFFICER, "roles": ["operator"]}
        assert (await auditor.get("/api/v1/console/session")).json()["roles"] == ["auditor"]
        assert (await stranger.get("/api/v1/console/session")).status_code == 401

        # ---- images: the best probe decrypted, the reference from the watchlist, never cached
        probe = await op.get(f"/api/v1/alerts/{aid}/probe.jpg")
        assert probe.status_code == 200 and probe.content == best_jpeg
        assert probe.headers["content-type"] == "image/jpeg"
        assert "no-store" in probe.headers["cache-control"] and probe.headers["pragma"] == "no-cache"
        assert (await auditor.get(f"/api/v1/alerts/{aid}/probe.jpg")).status_code == 403
        assert (await anonymous.get(f"/api/v1/alerts/{aid}/probe.jpg")).status_code == 401
        ref = await op.get(f"/api/v1/alerts/{aid}/reference.jpg")
        expected_ref = base64.b64decode((await live.watchlist("s-1", "wl-test"))["thumbnail"])  # type: ignore[index]
        assert ref.status_code == 200 and ref.content == expected_ref
        assert "no-store" in ref.headers["cache-control"]
        assert (await op.get(f"/api/v1/alerts/{other}/reference.jpg")).status_code == 404
        # Each image handed out is on the audit log: who looked at which alert's faces (refusals are not).
        views = [
            e
            for e in await read_all(settings)
            if e.target == f"alert:{aid}" and e.action.startswith("alert.view")
        ]
        assert sorted(e.action for e in views) == ["alert.view_probe", "alert.view_reference"]
        assert all(e.actor == OFFICER and e.details["deployment_id"] == dep for e in views)

        # ---- adjudication
        assert (
            await auditor.post(f"/api/v1/alerts/{aid}/adjudication", json={"outcome": "match"})
        ).status_code == 403
        assert (
            await op.post(f"/api/v1/alerts/{aid}/adjudication", json={"outcome": "maybe"})
        ).status_code == 422
        r = await op.post(
            f"/api/v1/alerts/{aid}/adjudication", json={"outcome": "match", "note": "scar matches"}
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["recorded_now"] is True and body["alert"]["status"] == "confirmed"
        assert body["alert"]["revision"] == 3 and body["alert"]["adjudication"]["officer"] == OFFICER
        again = await op.post(f"/api/v1/alerts/{aid}/adjudication", json={"outcome": "match"})
        assert again.status_code == 200 and again.json()["recorded_now"] is False
        clash = await op.post(f"/api/v1/alerts/{aid}/adjudication", json={"outcome": "no_match"})
        assert clash.status_code == 409
        r = await op.post(f"/api/v1/alerts/{other}/adjudication", json={"outcome": "unable"})
        assert r.status_code == 200 and r.json()["alert"]["status"] == "undecided"

        await tail.wait_until(
            lambda: any(
                a.alert_id == aid and a.status == AlertStatus.ALERT_STATUS_CONFIRMED
                for _, a in tail.alerts({dep}, topic=topics.ALERT_UPDATES)
            ),
            10,
            "the confirmed revision on lfr.alert-updates.v1",
        )
        await tail.wait_until(
            lambda: any(
                d["change"] == "adjudicated" and d["alert"]["alert_id"] == aid for _, d in sse.alert_events()
            ),
            10,
            "the decision on the live stream",
        )

    async with AlertTail(settings, topics.ADJUDICATIONS) as adjudications:
        await adjudications.wait_until(
            lambda: sum(1 for _, v in adjudications.records if decode(Adjudication, v).alert_id == aid) >= 1,
            10,
            "the adjudication on lfr.adjudications.v1",
        )
        await asyncio.sleep(0.5)
        mine = [decode(Adjudication, v) for _, v in adjudications.records]
    decisions = [d for d in mine if d.alert_id == aid]
    assert len(decisions) == 1, "a repeated POST must not publish the decision twice"
    assert decisions[0].outcome == Outcome.OUTCOME_MATCH and decisions[0].officer == OFFICER
    assert decisions[0].deployment_id == dep and decisions[0].note == "scar matches"

    audit = [e for e in await read_all(settings) if e.action == "alert.adjudicate" and e.target == aid]
    assert len(audit) == 1 and audit[0].actor == OFFICER and chain_hash(audit[0]) == audit[0].hash
    assert audit[0].details["outcome"] == "match" and audit[0].details["deployment_id"] == dep

    # ---- dashboard and report
    analysed = {f"face-{i}": {stats.FACES_ANALYSED: 1} for i in range(2000)}
    await stats.add_once(redis, settings, dep, "embedder", analysed, marker_ttl_ms=60_000)
    async with live.api.client() as op:
        d = (await op.get(f"/api/v1/deployments/{dep}/dashboard")).json()
    assert (d["faces_analysed"], d["alerts"], d["confirmed"], d["rejected"], d["unable"], d["pending"]) == (
        2000,
        2,
        1,
        0,
        1,
        0,
    )
    assert d["alerts_per_1000_faces"] == 1.0 and d["last_hour_alerts"] == 2

    report_csv = await asyncio.to_thread(_report, settings, dep, "csv")
    rows = {row["scope"]: row for row in csv.DictReader(io.StringIO(report_csv))}
    assert rows["deployment"]["alerts"] == "2" and rows["deployment"]["confirmed"] == "1"
    assert rows["deployment"]["unable"] == "1" and rows["category:wanted"]["confirmed"] == "1"

    # ---- purge: records and probes gone at once; a replayed old hit cannot bring them back
    try:
        reader = DeploymentAlertKeys(settings, redis, cache_s=0)
        aad = probe_aad(hits[1].crop_id, dep)
        assert await reader.open(dep, hits[1].probe, aad) == best_jpeg
        deleted = await make_purge_alerts(settings, redis)(dep)
        assert deleted == 2
        # The hit is still on lfr.hits.v1 (31-day retention), but its probe went with the deployment's key.
        async with AlertTail(settings, topics.HITS) as hit_tail:

            def on_topic() -> list[Hit]:
                found = (decode(Hit, v) for _, v in hit_tail.records)
                return [h for h in found if h.deployment_id == dep and h.crop_id == hits[1].crop_id]

            await hit_tail.wait_until(lambda: bool(on_topic()), 20, "the hit read back from its topic")
        with pytest.raises(KeyExpired):
            await reader.open(dep, on_topic()[0].probe, aad)
        with pytest.raises(KeyExpired):
            await DeploymentAlertKeys(settings, redis).open(dep, hits[1].probe, aad)
        async with live.api.client() as op:
            assert (await op.get(f"/api/v1/alerts/{aid}")).status_code == 404
            assert (await op.get(f"/api/v1/alerts/{aid}/probe.jpg")).status_code == 404
            assert (await op.get("/api/v1/alerts", params={"deployment": dep})).json()["alerts"] == []
        marker_dep = f"marker-{uuid.uuid4().hex[:6]}"
        async with AlertTail(settings, from_beginning=False) as tail, HitProducer(settings) as producer:
            replayed = await maker.hit(dep, "s-1", "crop-9", captured_ms=t - 500)
            await producer.send([replayed])
            await producer.send([await maker.hit(marker_dep, "s-9", "crop-10")])
            await tail.wait_until(lambda: bool(tail.alerts({marker_dep})), 20, "the marker alert")
            assert tail.alerts({dep}) == []
        assert await AlertStore(settings, redis).count(dep) == 0
        assert (await stats.totals(redis, settings, dep))[stats.ALERTS] == 2  # counters survive
    finally:
        await redis.aclose()


def _report(settings: Settings, dep: str, fmt: str) -> str:
    env = {
        "LFR_REDIS__URL": settings.redis_url,
        "LFR_REDIS__KEY_PREFIX": settings.redis.key_prefix,
        "LFR_KAFKA__BOOTSTRAP_SERVERS": settings.kafka_bootstrap,
        "LFR_DATA_DIR": str(settings.data_dir),
    }
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(report_app, ["deployment", dep, "--format", fmt], env=env)
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    return result.output


class FailsFirstSend:
    """The real producer, except that its first ``send_and_wait`` fails as a broker outage would."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.failed = False

    async def send_and_wait(self, *args: Any, **kwargs: Any) -> Any:
        if not self.failed:
            self.failed = True
            raise KafkaConnectionError("broker unreachable")
        return await self.real.send_and_wait(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


async def test_a_decision_interrupted_after_recording_is_finished_by_the_same_decision(live: Live) -> None:
    settings, ctx = live.settings, live.api.ctx
    dep = f"resume-{uuid.uuid4().hex[:6]}"
    hit = await HitMaker(settings).hit(dep, "s-9", "crop-9")
    async with AlertTail(settings, ALERT_TOPICS, from_beginning=False) as tail, HitProducer(settings) as hp:
        await hp.send([hit])
        await tail.wait_until(lambda: bool(tail.alerts({dep})), 30, "the alert")
    aid = tail.alerts({dep})[0][1].alert_id
    working = ctx.adjudicator
    flaky = FailsFirstSend(ctx.producer)
    ctx.adjudicator = Adjudicator(ctx.alerts, settings, ctx.redis, lambda: flaky, ctx.audit)
    try:
        async with live.api.client() as op:
            first = await op.post(f"/api/v1/alerts/{aid}/adjudication", json={"outcome": "no_match"})
            assert first.status_code == 503 and "send the same decision again" in first.json()["detail"]
            state = await ctx.alerts.get(aid)
            assert state is not None and state.adj_outcome == "no_match" and not state.adj_steps
            # A different decision is still refused: the first one was recorded.
            assert (
                await op.post(f"/api/v1/alerts/{aid}/adjudication", json={"outcome": "match"})
            ).status_code == 409
            again = await op.post(f"/api/v1/alerts/{aid}/adjudication", json={"outcome": "no_match"})
            assert again.status_code == 200 and again.json()["recorded_now"] is False
            assert again.json()["alert"]["status"] == "rejected"
            d = (await op.get(f"/api/v1/deployments/{dep}/dashboard")).json()
    finally:
        ctx.adjudicator = working
    assert (d["alerts"], d["rejected"], d["pending"]) == (1, 1, 0), "the decision is counted once"
    async with AlertTail(settings, topics.ADJUDICATIONS) as adjudications:
        await adjudications.wait_until(
            lambda: any(decode(Adjudication, v).alert_id == aid for _, v in adjudications.records),
            10,
            "the decision on lfr.adjudications.v1",
        )
        await asyncio.sleep(0.5)
        sent = [v for _, v in adjudications.records if decode(Adjudication, v).alert_id == aid]
    assert len(sent) == 1
    audit = [e for e in await read_all(settings) if e.action == "alert.adjudicate" and e.target == aid]
    assert len(audit) == 1 and audit[0].details["outcome"] == "no_match"


async def test_console_files_are_served_with_a_strict_policy(live: Live) -> None:
    async with live.api.client(token=None, follow_redirects=False) as c:
        r = await c.get("/console")
        assert r.status_code == 308 and r.headers["location"] == "/console/"
        page = await c.get("/console/")
        assert page.status_code == 200 and "LFR operator console" in page.text
        csp = page.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "connect-src 'self'" in csp
        assert "http" not in page.text.replace("http-equiv", "")  # no external resources
        js = await c.get("/console/console.js")
        assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
        assert "sessionStorage" in js.text and "localStorage" not in js.text
        assert (await c.get("/console/console.css")).status_code == 200
        assert (await c.get("/console/secrets.txt")).status_code == 404
        assert (await c.get("/console/..%2Fconsole.js")).status_code == 404
