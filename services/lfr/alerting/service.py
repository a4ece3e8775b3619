"""Composition root of `lfr alert`: hits -> deduplicated alerts -> Kafka, webhooks and the consoles' stream.

Runs on :class:`lfr.core.stage.Stage` (aiokafka consumer group, commit after produce), not a faust agent:
faust-streaming 0.15.3 was measured skipping offsets after restarts, and a lost hit is a lost alert. The
handler produces alert revisions itself through the stage's producer and waits for the acks before it
returns, because the dedupe record must learn which revision reached Kafka (see dedupe.py); the stage then
commits. Records that can never be processed go to lfr.deadletter.v1 through the stage.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer, ConsumerRecord
from prometheus_client import Counter, Histogram
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from lfr.alerting.dedupe import Applied, Deduper
from lfr.alerting.hit_gate import HitGate, Refusal
from lfr.alerting.publish import AlertPublisher, Change, Revision
from lfr.alerting.webhooks import WebhookWorker
from lfr.core import topics
from lfr.core.config import Settings
from lfr.core.redis_client import make_redis
from lfr.core.serde import SerdeError, decode, require
from lfr.core.service import ServiceContext
from lfr.core.stage import Output, Stage, dead_letter
from lfr.core.timeutil import now_ms
from lfr.v1.hit_pb2 import Hit
from lfr.watchlist.deployments import DeploymentStore, LiveDeployments

log = logging.getLogger(__name__)

STAGE = "alerting"
HITS = Counter("lfr_alert_hits_total", "Hits applied to alerts, by outcome", ["outcome"])
ALERTS_CREATED = Counter("lfr_alerts_created_total", "Alerts created (first hit of a window)")
ALERTS_UPDATED = Counter("lfr_alerts_updated_total", "Alert updates (later hits of a window)")
HIT_TO_ALERT = Histogram(
    "lfr_alert_hit_to_alert_seconds",
    "From the hit's record time on lfr.hits.v1 to its alert revision acknowledged on Kafka",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)


class AlertHandler:
    """The stage's batch handler: decode, dedupe in Redis, publish each changed alert once per batch."""

    def __init__(
        self,
        settings: Settings,
        redis: aioredis.Redis,
        producer: Callable[[], AIOKafkaProducer],
        on_enqueued: Callable[[], None] | None = None,
        gate: HitGate | None = None,
    ) -> None:
        self.settings = settings
        self.gate = gate
        self.deduper = Deduper(settings, redis)
        self.publisher = AlertPublisher(settings, redis, producer, on_enqueued)

    async def __call__(self, records: Sequence[ConsumerRecord]) -> list[Output]:
        dead: list[Output] = []
        hits: list[tuple[Hit, int]] = []
        record_ms: list[int] = []
        for r in records:
            try:
                hit = decode(Hit, r.value)
                require(hit, "hit_id", "deployment_id", "subject_id")
            except SerdeError as exc:
                dead.append(dead_letter(STAGE, r, "undecodable", str(exc), keep_payload=False))
                continue
            ts = int(r.timestamp) if r.timestamp and r.timestamp > 0 else now_ms()
            refused = await self._refusal(hit, ts)
            if refused is not None:
                HITS.labels("refused").inc()
                dead.append(dead_letter(STAGE, r, refused.reason, refused.detail, keep_payload=False))
                continue
            hits.append((hit, ts))
            record_ms.append(ts)
        try:
            results = await self.deduper.apply(hits, now_ms())
            # The newest state of each changed alert in this batch: one revision per alert per batch, so a
            # burst of sightings of one person reaches subscribers as one update, not dozens.
            latest: dict[str, Revision] = {}
            created: set[str] = set()
            first_ms: dict[str, int] = {}
            for res, ts in zip(results, record_ms, strict=True):
                HITS.labels(res.code.name.lower()).inc()
                if res.state is None:
                    continue
                aid = res.state.alert_id
                if res.code == Applied.CREATED:
                    created.add(aid)
                prev = latest.get(aid)
                if prev is None or res.state.revision >= prev.state.revision:
                    # Never produced (new, or its first produce lost in a crash): subscribers get it as new.
                    change = Change.CREATED if res.state.published_revision == 0 else Change.UPDATED
                    latest[aid] = Revision(res.state, change)
                first_ms[aid] = min(first_ms.get(aid, ts), ts)
            await self.publisher.publish(list(latest.values()))
        except (RedisConnectionError, RedisTimeoutError) as exc:
            # The stage retries batches on builtin connection errors; redis-py's are not subclasses of them.
            raise ConnectionError(f"redis: {exc}") from exc
        done = now_ms()
        for aid in latest:
            (ALERTS_CREATED if aid in created else ALERTS_UPDATED).inc()
            HIT_TO_ALERT.observe(max(0, done - first_ms[aid]) / 1000)
        return dead

    async def _refusal(self, hit: Hit, record_ms: int) -> Refusal | None:
        if self.gate is None:
            return None
        try:
            return await self.gate.check(hit, record_ms)
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise ConnectionError(f"redis: {exc}") from exc


class AlertingService:
    """The stage on lfr.hits.v1 plus the webhook delivery worker, run and stopped together."""

    def __init__(self, settings: Settings, redis: aioredis.Redis, *, batch_size: int = 128) -> None:
        self.settings = settings
        self.redis = redis
        self.webhooks = WebhookWorker(settings, redis)
        # Hits of unknown, unstarted or finished deployments are dead-lettered (hit_gate.py).
        gate = HitGate(LiveDeployments(DeploymentStore(settings, redis)))
        self.handler = AlertHandler(settings, redis, lambda: self.stage.producer, self.webhooks.wake, gate)
        self.stage = Stage(
            settings,
            STAGE,
            topics.HITS,
            settings.alerting.group_id,
            self.handler,
            batch_size=batch_size,
            batch_wait_ms=20,
        )

    def stop(self) -> None:
        self.stage.stop()
        self.webhooks.stop()

    async def run(self) -> None:
        """Until stopped; if either part fails, the other is stopped and the failure is raised."""
        tasks = [
            asyncio.create_task(self.stage.run(), name="alerting-stage"),
            asyncio.create_task(self.webhooks.run(), name="alerting-webhooks"),
        ]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.stop()
            _, pending = await asyncio.wait(tasks, timeout=20)
            for t in pending:
                t.cancel()
        for t in tasks:
            if not t.cancelled() and t.exception() is not None:
                raise t.exception()  # type: ignore[misc]


async def main(ctx: ServiceContext) -> None:
    s = ctx.settings
    redis = make_redis(s)
    service = AlertingService(s, redis)
    ctx.on_stop(service.stop)
    ctx.health.add_check("kafka", lambda: service.stage.ready)
    ctx.health.add_check("redis", redis.ping)
    log.info(
        "alerting ready: group %s, dedupe window %ds, %d webhook subscriber(s)",
        s.alerting.group_id,
        s.alerting.dedupe_window_s,
        len(s.alerting.webhooks),
    )
    try:
        await service.run()
    finally:
        await redis.aclose()
