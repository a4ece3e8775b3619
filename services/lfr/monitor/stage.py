"""`lfr monitor`: a faust-streaming app with windowed tables over camera reports, alerts and adjudications.

Per camera it keeps frames, analysed frames, faces and crops per minute (from ``lfr.camera-stats.v1``,
which every ingest replica writes every few seconds); per deployment, alerts per minute
(``lfr.alerts.v1``, one record per alert) and adjudication outcomes per minute (``lfr.adjudications.v1``).
Tables are tumbling one-minute windows with changelogs, so a restarted monitor recovers its figures.
Every ``monitor.check_interval_s`` it judges silence and alert-rate jumps, raises operations events
(``lfr.ops-events.v1`` and a Redis list), writes the figures `lfr status` reads, and exports Prometheus
gauges for the alert rules, including consumer lag per group and partition.

Every record reaches the tables through :class:`lfr.monitor.guard.OffsetGuard`, which re-reads offsets
faust 0.15.3 skips after a restart, and every window keeps the last offset applied to it, which makes
redelivery harmless: the figures stay exact across kills and restarts (tests/integration/monitor).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import redis.asyncio as aioredis
from prometheus_client import Counter, Gauge
from redis.exceptions import RedisError

from lfr.core import topics
from lfr.core.bus import make_faust_app
from lfr.core.config import Settings
from lfr.core.redis_client import make_redis
from lfr.core.service import ServiceContext, run_service
from lfr.monitor import records
from lfr.monitor.guard import OffsetGuard, RawRecord
from lfr.monitor.kafka_state import end_offsets, group_status, known_groups
from lfr.monitor.windows import (
    CAMERA_FIGURES,
    MINUTE_MS,
    Observation,
    adjudication_observation,
    alert_observation,
    alert_rate,
    camera_observation,
    camera_silent,
    merge,
    minute_of,
)

log = logging.getLogger(__name__)

CAMERA_PER_MINUTE = Gauge(
    "lfr_monitor_camera_per_minute", "Last complete minute's count per camera", ["camera", "figure"]
)
CAMERA_SILENT = Gauge("lfr_monitor_camera_silent", "1 while the camera has delivered no frames", ["camera"])
ALERTS_PER_MINUTE = Gauge(
    "lfr_monitor_alerts_per_minute", "Alerts in the last complete minute", ["deployment"]
)
ALERT_BASELINE = Gauge(
    "lfr_monitor_alert_baseline_per_minute", "Mean alerts per minute before", ["deployment"]
)
ALERT_JUMP = Gauge(
    "lfr_monitor_alert_rate_jump", "1 while the deployment's alert rate has jumped", ["deployment"]
)
EVENTS = Counter("lfr_monitor_events_total", "Operations events raised", ["kind"])
LAG = Gauge("lfr_consumer_lag", "Records not yet committed by the group", ["group", "topic", "partition"])
LAG_TOTAL = Gauge("lfr_consumer_lag_total", "Sum of the group's lag over its partitions", ["group"])
MEMBERS = Gauge("lfr_consumer_group_members", "Members of the consumer group", ["group"])

Parse = Callable[[bytes | None, int], Observation | None]
LAG_EVERY_CHECKS = 3


class WindowedCounts:
    """One topic aggregated into a tumbling one-minute table, each record applied once (see windows.merge)."""

    def __init__(self, app: Any, settings: Settings, table: str, topic: str, partitions: int, parse: Parse):
        self.topic_name = topic
        self.parse = parse
        keep = timedelta(minutes=settings.monitor.keep_minutes)
        self._at_s = 0.0
        self.table = (
            app.Table(table, default=dict, partitions=partitions)
            .tumbling(60, expires=keep)
            .relative_to(self._event_time)
        )
        self.topic = app.topic(
            topic, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
        )

    def _event_time(self, _: Any) -> float:
        return self._at_s

    async def apply(self, record: RawRecord) -> None:
        obs = self.parse(record.value, record.timestamp_ms)
        if obs is None:
            return
        self._at_s = obs.at_ms / 1000
        new = merge(self.table[obs.key].current(), obs, record.offset)
        if new is not None:
            new["p"] = record.partition
            self.table[obs.key] = new

    def applied_up_to(self, partition: int) -> int | None:
        """The highest source offset of ``partition`` the table holds (see OffsetGuard._first_expected)."""
        offsets = [
            int(v["o"])
            for v in list(self.table.table.data.values())
            if isinstance(v, dict) and v.get("p") == partition and isinstance(v.get("o"), int)
        ]
        return max(offsets) if offsets else None

    def windows(self) -> dict[str, dict[int, dict[str, Any]]]:
        """key -> minute start (ms) -> window value, from the local table (recovered from its changelog)."""
        out: dict[str, dict[int, dict[str, Any]]] = {}
        for stored_key, value in list(self.table.table.data.items()):
            try:
                key, (start, _end) = stored_key
            except (TypeError, ValueError):
                continue
            if isinstance(value, dict):
                out.setdefault(str(key), {})[round(float(start) * 1000)] = value
        return out


class Monitor:
    """The faust app, its three tables, and the periodic verdicts."""

    def __init__(self, settings: Settings, redis: aioredis.Redis, clock: Callable[[], float] = time.time):
        self.settings = settings
        self.redis = redis
        self.clock = clock
        m = settings.monitor
        k = settings.kafka
        self.app = make_faust_app(
            settings,
            m.app_id,
            store="memory://",
            topic_disable_leader=True,
            table_standby_replicas=0,
            stream_wait_empty=False,
        )
        self.guard = OffsetGuard(settings, m.app_id, self._applied_up_to)
        self.cameras = WindowedCounts(
            self.app, settings, "camera-minutes", topics.CAMERA_STATS, k.alerts_partitions, camera_observation
        )
        self.alerts = WindowedCounts(
            self.app, settings, "deployment-alerts", topics.ALERTS, k.alerts_partitions, alert_observation
        )
        self.outcomes = WindowedCounts(
            self.app,
            settings,
            "deployment-outcomes",
            topics.ADJUDICATIONS,
            k.hits_partitions,
            adjudication_observation,
        )
        self.ops_topic = self.app.topic(topics.OPS_EVENTS, key_serializer="raw", value_serializer="raw")
        self.silent: dict[str, int] = {}
        self.jumping: set[str] = set()
        self.checks = 0
        self._reread_reported = 0
        for counts in (self.cameras, self.alerts, self.outcomes):
            self._agent(counts)
        self.app.on_partitions_assigned.connect(self._on_assigned)

    def _applied_up_to(self, tp: Any) -> int | None:
        for counts in (self.cameras, self.alerts, self.outcomes):
            if counts.topic_name == tp.topic:
                return counts.applied_up_to(tp.partition)
        return None

    async def _on_assigned(self, *_: Any, **__: Any) -> None:
        self.guard.forget()

    def _agent(self, counts: WindowedCounts) -> None:
        guard = self.guard

        async def consume(stream: Any) -> None:
            async for event in stream.events():
                msg = event.message
                raw = RawRecord(
                    msg.topic, msg.partition, msg.offset, int(msg.timestamp * 1000), msg.key, msg.value
                )
                await guard.admit(raw, counts.apply)

        self.app.agent(counts.topic, name=f"monitor-{counts.topic_name}")(consume)

    # ---- verdicts, projections and events ---------------------------------------------------------------
    async def check(self) -> None:
        now_ms = int(self.clock() * 1000)
        ttl = records.doc_ttl_s(self.settings)
        for camera_id, minutes in self.cameras.windows().items():
            await self._camera(camera_id, minutes, now_ms, ttl)
        alerts = self.alerts.windows()
        outcomes = self.outcomes.windows()
        for deployment_id in sorted(set(alerts) | set(outcomes)):
            await self._deployment(
                deployment_id, alerts.get(deployment_id, {}), outcomes.get(deployment_id, {}), now_ms, ttl
            )
        self.checks += 1
        if self.checks % LAG_EVERY_CHECKS == 1:
            await self._lag()
        reread = self.guard.gaps_filled - self._reread_reported
        await records.beat(self.redis, self.settings, reread)
        self._reread_reported += reread

    async def _camera(
        self, camera_id: str, minutes: dict[int, dict[str, Any]], now_ms: int, ttl: int
    ) -> None:
        m = self.settings.monitor
        last_minute_ms = minute_of(now_ms) - MINUTE_MS
        last = minutes.get(last_minute_ms, {})
        deployment_id = next(
            (str(v.get("deployment_id", "")) for _, v in sorted(minutes.items(), reverse=True)), ""
        )
        for name in CAMERA_FIGURES:
            CAMERA_PER_MINUTE.labels(camera_id, name).set(int(last.get(name, 0)))
        since = camera_silent(minutes, now_ms, m.silent_after_s)
        was = self.silent.get(camera_id)
        if since is not None and was is None:
            self.silent[camera_id] = since
            await self._event(
                "camera_silent", camera_id, now_ms, {"deployment_id": deployment_id, "since_ms": since}
            )
        elif since is None and was is not None:
            del self.silent[camera_id]
            await self._event("camera_recovered", camera_id, now_ms, {"deployment_id": deployment_id})
        CAMERA_SILENT.labels(camera_id).set(1 if since is not None else 0)
        doc = {
            "camera_id": camera_id,
            "deployment_id": deployment_id,
            "silent": since is not None,
            "silent_since_ms": self.silent.get(camera_id),
            "last_report_ms": max(int(v.get("last_ms", 0)) for v in minutes.values()),
            "last_minute": {"minute_ms": last_minute_ms, **{n: int(last.get(n, 0)) for n in CAMERA_FIGURES}},
            "minutes": [
                {"minute_ms": start, **{n: int(v.get(n, 0)) for n in CAMERA_FIGURES}}
                for start, v in sorted(minutes.items())
            ],
        }
        await records.put_doc(self.redis, records.camera_key(self.settings, camera_id), doc, ttl)

    async def _deployment(
        self,
        deployment_id: str,
        alerts: dict[int, dict[str, Any]],
        outcomes: dict[int, dict[str, Any]],
        now_ms: int,
        ttl: int,
    ) -> None:
        m = self.settings.monitor
        per_minute = {start: int(v.get("alerts", 0)) for start, v in alerts.items()}
        rate = alert_rate(per_minute, now_ms, m.baseline_minutes, m.alert_rate_factor, m.alert_rate_min)
        if rate.jump and deployment_id not in self.jumping:
            self.jumping.add(deployment_id)
            detail = {"alerts_per_minute": max(rate.current, rate.last_minute), "baseline": rate.baseline}
            await self._event("alert_rate_jump", deployment_id, now_ms, detail)
        elif not rate.jump and deployment_id in self.jumping:
            self.jumping.discard(deployment_id)
            await self._event("alert_rate_normal", deployment_id, now_ms, {"baseline": rate.baseline})
        ALERTS_PER_MINUTE.labels(deployment_id).set(rate.last_minute)
        ALERT_BASELINE.labels(deployment_id).set(rate.baseline)
        ALERT_JUMP.labels(deployment_id).set(1 if rate.jump else 0)
        totals: dict[str, int] = {}
        for v in outcomes.values():
            for name in ("match", "no_match", "unable"):
                totals[name] = totals.get(name, 0) + int(v.get(name, 0))
        doc = {
            "deployment_id": deployment_id,
            "alerts_current_minute": rate.current,
            "alerts_last_minute": rate.last_minute,
            "baseline": rate.baseline,
            "jump": rate.jump,
            "outcomes": totals,
            "alerts_per_minute": [{"minute_ms": s, "alerts": n} for s, n in sorted(per_minute.items())],
        }
        await records.put_doc(self.redis, records.deployment_key(self.settings, deployment_id), doc, ttl)

    async def _event(self, kind: str, subject: str, now_ms: int, detail: dict[str, Any]) -> None:
        EVENTS.labels(kind).inc()
        event = {"kind": kind, "subject": subject, "at_ms": now_ms, "detail": detail}
        log.warning("operations event %s for %s", kind, subject)
        await records.push_event(self.redis, self.settings, event)
        await self.ops_topic.send(key=subject.encode(), value=json.dumps(event).encode())

    async def _lag(self) -> None:
        wanted = {t for g in known_groups(self.settings) for t in g.topics}
        offsets = await end_offsets(self.settings, wanted)
        for g in await group_status(self.settings, offsets):
            if g.role == "other":
                continue
            LAG_TOTAL.labels(g.group).set(g.lag)
            MEMBERS.labels(g.group).set(len(g.members))
            for p in g.partitions:
                LAG.labels(g.group, p.topic, str(p.partition)).set(p.lag)

    async def _seed(self) -> None:
        """Silence and jumps already raised before a restart are not raised again."""
        for doc in await records.read_docs(self.redis, records.camera_key(self.settings, "")):
            if doc.get("silent") and doc.get("silent_since_ms") is not None:
                self.silent[str(doc["camera_id"])] = int(doc["silent_since_ms"])
        for doc in await records.read_docs(self.redis, records.deployment_key(self.settings, "")):
            if doc.get("jump"):
                self.jumping.add(str(doc["deployment_id"]))

    # ---- running ---------------------------------------------------------------------------------------
    async def run(self, stopping: asyncio.Event, ready: Callable[[bool], None] = lambda _: None) -> None:
        await self._seed()
        (self.settings.data_dir / "faust").mkdir(parents=True, exist_ok=True)
        await self.guard.start()
        await self.app.start()
        ready(True)
        try:
            while not stopping.is_set():
                try:
                    await asyncio.wait_for(stopping.wait(), self.settings.monitor.check_interval_s)
                except TimeoutError:
                    pass
                if stopping.is_set():
                    break
                try:
                    await self.check()
                except (RedisError, OSError) as exc:
                    log.warning("monitor check failed (%s); retrying next interval", type(exc).__name__)
                except Exception as exc:  # a check must never stop the stage; the next one retries
                    log.error("monitor check failed: %s: %s", type(exc).__name__, str(exc)[:200])
        finally:
            ready(False)
            await self.app.stop()
            await self.guard.stop()


async def main(ctx: ServiceContext) -> None:
    settings = ctx.settings
    redis = make_redis(settings)
    state = {"ready": False}
    ctx.health.add_check("monitor", lambda: state["ready"])
    try:
        monitor = Monitor(settings, redis)
        await monitor.run(ctx.stopping, lambda ok: state.__setitem__("ready", ok))
    finally:
        await redis.aclose()


def run_monitor(settings: Settings) -> None:
    run_service(settings, "monitor", main)
