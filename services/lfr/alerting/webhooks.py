"""Signed webhook delivery of alerts: a durable outbox in Redis, retries with backoff, dead letters, replay.

Why an outbox: an alert that reached Kafka must also reach every webhook subscriber even if the alerting
process dies right after, so each (subscriber, alert revision) is written to Redis before the hit's offset
is committed, and a delivery worker (a task inside ``lfr alert``, any replica) drains it. Entries are
claimed with a lease: a worker that dies mid-delivery leaves the entry to be retried after the lease.
Deliveries are at least once and may arrive out of order; receivers de-duplicate by ``X-LFR-Delivery``
or by (alert_id, revision) and keep the highest revision of each alert.

Keys (under ``settings.redis.key_prefix``): ``webhooks:entries`` hash id -> entry JSON, ``webhooks:due``
sorted set id -> due time ms, ``webhooks:dead`` hash id -> entry JSON, ``webhooks:dead_at`` sorted set id
-> time it died.

Request format (documented for receivers in docs and in ``lfr.client.webhooks.verify_signature``)::

    POST <subscriber url>
    Content-Type: application/json
    X-LFR-Event: alert
    X-LFR-Delivery: <entry id, stable across retries>
    X-LFR-Timestamp: <unix seconds of this attempt>
    X-LFR-Signature: sha256=<hex HMAC-SHA256(secret, f"{timestamp}.{body}")>

    {"type": "lfr.alert.v1", "change": "created|updated|adjudicated", "alert": <lfr.v1.Alert as JSON>}

The body holds ids, times, scores and status only: no names, no images (those stay behind the API).
Receivers check requests with ``verify_request`` and a ``ReplayGuard`` (or the standalone reference
verifier in docs/security.md): authentic, at most ``DEFAULT_TOLERANCE_S`` old, never seen before. Signing
and verifying live in :mod:`lfr.client.webhooks` only (receivers install only ``lfr[client]``); this module
signs with it, and callers import them from there.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import httpx
import redis.asyncio as aioredis
from prometheus_client import Counter, Histogram
from redis.asyncio.client import Pipeline
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from lfr.client.webhooks import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from lfr.core.config import Settings, WebhookSubscriber
from lfr.core.ids import derive_id
from lfr.core.redis_client import key as rkey
from lfr.core.redis_client import text
from lfr.core.retry import backoff_delay, wait_or_timeout
from lfr.core.timeutil import now_ms

__all__ = ["Outbox", "WebhookWorker", "envelope"]

log = logging.getLogger(__name__)

DELIVERED = Counter("lfr_webhook_deliveries_total", "Webhook deliveries acknowledged", ["subscriber"])
FAILED = Counter("lfr_webhook_attempts_failed_total", "Webhook attempts that failed", ["subscriber"])
DEAD = Counter("lfr_webhook_dead_letters_total", "Webhook deliveries given up", ["subscriber"])
DELIVERY_SECONDS = Histogram(
    "lfr_webhook_delivery_seconds",
    "From outbox entry to acknowledged delivery",
    ["subscriber"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)


def subscribers_for(settings: Settings, deployment_id: str) -> list[WebhookSubscriber]:
    return [s for s in settings.alerting.webhooks if not s.deployments or deployment_id in s.deployments]


def envelope(change: str, alert_json: dict[str, object]) -> str:
    return json.dumps(
        {"type": "lfr.alert.v1", "change": change, "alert": alert_json},
        separators=(",", ":"),
        sort_keys=True,
    )


@dataclass
class Entry:
    id: str
    subscriber: str
    deployment_id: str
    alert_id: str
    revision: int
    body: str
    created_ms: int
    attempts: int = 0
    last_error: str = ""
    dead_ms: int = 0

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: bytes | str) -> Entry:
        return cls(**json.loads(raw))


def entry_id(subscriber: str, alert_id: str, revision: int) -> str:
    """Derived, so an alert revision re-emitted after a crash lands on the same outbox entry."""
    return derive_id("webhook", subscriber, alert_id, revision)


# Claims up to ARGV[2] entries due at ARGV[1] by pushing their due time to ARGV[3] (the lease).
_CLAIM = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for _, id in ipairs(ids) do
  local e = redis.call('HGET', KEYS[2], id)
  if e then
    redis.call('ZADD', KEYS[1], ARGV[3], id)
    table.insert(out, e)
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
return out
"""

# Moves a failed entry to the dead letters (ARGV[3] = '1') or reschedules it, storing its new JSON.
_FAIL = """
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 then return 0 end
if ARGV[3] == '1' then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
  redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
  redis.call('ZADD', KEYS[4], ARGV[5], ARGV[1])
  local old = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', ARGV[6])
  for _, id in ipairs(old) do redis.call('HDEL', KEYS[3], id) end
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', ARGV[6])
else
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
  redis.call('ZADD', KEYS[1], ARGV[4], ARGV[1])
end
return 1
"""


class Outbox:
    """The Redis side of webhook delivery: enqueue, claim, complete, fail, dead letters and replay."""

    def __init__(self, settings: Settings, redis: aioredis.Redis) -> None:
        self.settings = settings
        self.redis = redis
        self.due_key = rkey(settings, "webhooks", "due")
        self.entries_key = rkey(settings, "webhooks", "entries")
        self.dead_key = rkey(settings, "webhooks", "dead")
        self.dead_at_key = rkey(settings, "webhooks", "dead_at")
        self._claim: AsyncScript = redis.register_script(_CLAIM)
        self._fail: AsyncScript = redis.register_script(_FAIL)

    def entries_for(self, deployment_id: str, alert_id: str, revision: int, body: str) -> list[Entry]:
        created = now_ms()
        return [
            Entry(
                entry_id(s.name, alert_id, revision), s.name, deployment_id, alert_id, revision, body, created
            )
            for s in subscribers_for(self.settings, deployment_id)
        ]

    def stage_enqueue(self, pipe: Pipeline, entries: Sequence[Entry]) -> None:
        """Add entries to a caller's pipeline (NX: an entry already waiting keeps its attempts)."""
        for e in entries:
            pipe.hsetnx(self.entries_key, e.id, e.to_json())
            pipe.zadd(self.due_key, {e.id: e.created_ms}, nx=True)

    async def enqueue(self, entries: Sequence[Entry]) -> None:
        if not entries:
            return
        pipe = self.redis.pipeline(transaction=True)
        self.stage_enqueue(pipe, entries)
        await pipe.execute()

    async def claim(self, limit: int, lease_s: float) -> list[Entry]:
        now = now_ms()
        raw = await self._claim(
            keys=[self.due_key, self.entries_key], args=[now, limit, now + int(lease_s * 1000)]
        )
        return [Entry.from_json(r) for r in raw]

    async def complete(self, entry: Entry) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.zrem(self.due_key, entry.id)
        pipe.hdel(self.entries_key, entry.id)
        await pipe.execute()

    async def fail(self, entry: Entry, dead: bool, next_due_ms: int) -> None:
        now = now_ms()
        if dead:
            entry.dead_ms = now
        retention_ms = self.settings.alerting.retention_days * 24 * 3600 * 1000
        await self._fail(
            keys=[self.due_key, self.entries_key, self.dead_key, self.dead_at_key],
            args=[entry.id, entry.to_json(), "1" if dead else "0", next_due_ms, now, now - retention_ms],
        )

    async def pending(self) -> int:
        return int(await self.redis.zcard(self.due_key))

    async def waiting(self) -> list[Entry]:
        """Entries not yet delivered (due or leased), with their attempt counts."""
        raw = await self.redis.hgetall(self.entries_key)
        return sorted((Entry.from_json(v) for v in raw.values()), key=lambda e: (e.created_ms, e.id))

    async def list_dead(self, subscriber: str | None = None) -> list[Entry]:
        raw = await self.redis.hgetall(self.dead_key)
        entries = [Entry.from_json(v) for v in raw.values()]
        if subscriber:
            entries = [e for e in entries if e.subscriber == subscriber]
        return sorted(entries, key=lambda e: (e.dead_ms, e.id))

    async def replay(self, subscriber: str | None = None, ids: Sequence[str] | None = None) -> int:
        """Move dead letters back into the outbox with a fresh attempt budget; returns how many."""
        wanted = None if ids is None else set(ids)
        chosen = [e for e in await self.list_dead(subscriber) if wanted is None or e.id in wanted]
        if not chosen:
            return 0
        now = now_ms()
        pipe = self.redis.pipeline(transaction=True)
        for e in chosen:
            e.attempts, e.dead_ms, e.last_error = 0, 0, ""
            pipe.hdel(self.dead_key, e.id)
            pipe.zrem(self.dead_at_key, e.id)
            pipe.hset(self.entries_key, e.id, e.to_json())
            pipe.zadd(self.due_key, {e.id: now})
        await pipe.execute()
        log.info("replayed %d webhook dead letters", len(chosen))
        return len(chosen)

    async def purge_deployment(self, deployment_id: str) -> int:
        """Drop waiting and dead deliveries of a purged deployment (they describe its alerts)."""
        removed = 0
        for table, index in ((self.entries_key, self.due_key), (self.dead_key, self.dead_at_key)):
            raw = await self.redis.hgetall(table)
            ids = [text(k) for k, v in raw.items() if Entry.from_json(v).deployment_id == deployment_id]
            if ids:
                pipe = self.redis.pipeline(transaction=True)
                pipe.hdel(table, *ids)
                pipe.zrem(index, *ids)
                await pipe.execute()
                removed += len(ids)
        return removed


class WebhookWorker:
    """Drains the outbox: signs and posts each entry, retries with backoff, dead-letters after the limit."""

    def __init__(
        self,
        settings: Settings,
        redis: aioredis.Redis,
        client: httpx.AsyncClient | None = None,
        *,
        batch: int = 32,
        poll_s: float = 0.25,
    ) -> None:
        self.settings = settings
        self.outbox = Outbox(settings, redis)
        self._client = client
        self._own_client = client is None
        self.batch = batch
        self.poll_s = poll_s
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()

    @property
    def lease_s(self) -> float:
        return self.settings.alerting.webhook_timeout_s * 2 + 5

    def wake(self) -> None:
        """Called after an enqueue in this process so new alerts go out without waiting for the poll."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    async def run(self) -> None:
        if not self.settings.alerting.webhooks and not await self.outbox.pending():
            log.info("no webhook subscribers configured")
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self.settings.alerting.webhook_timeout_s, follow_redirects=False
            )
        delay = self.poll_s
        try:
            while not self._stop.is_set():
                try:
                    n = await self.run_once()
                    delay = self.poll_s
                except (RedisError, OSError) as exc:
                    log.warning("webhook outbox unavailable (%s); retrying", type(exc).__name__)
                    n, delay = 0, min(delay * 2, 10.0)
                if n >= self.batch:
                    continue
                self._wake.clear()
                await wait_or_timeout(self._wake, delay)
        finally:
            if self._own_client and self._client is not None:
                await self._client.aclose()
                self._client = None

    async def run_once(self) -> int:
        """Claim and deliver what is due now; returns how many entries were attempted."""
        entries = await self.outbox.claim(self.batch, self.lease_s)
        if entries:
            await asyncio.gather(*(self._deliver(e) for e in entries))
        return len(entries)

    async def _deliver(self, entry: Entry) -> None:
        a = self.settings.alerting
        sub = next((s for s in a.webhooks if s.name == entry.subscriber), None)
        entry.attempts += 1
        if sub is None:
            entry.last_error = "subscriber no longer configured"
            DEAD.labels(entry.subscriber).inc()
            await self.outbox.fail(entry, dead=True, next_due_ms=0)
            return
        assert self._client is not None
        ts = int(time.time())
        headers = {
            "Content-Type": "application/json",
            EVENT_HEADER: "alert",
            DELIVERY_HEADER: entry.id,
            TIMESTAMP_HEADER: str(ts),
            SIGNATURE_HEADER: sign(sub.secret.get_secret_value(), ts, entry.body),
            "User-Agent": "lfr-webhooks/1",
        }
        retry_after = 0.0
        try:
            resp = await self._client.post(sub.url, content=entry.body.encode(), headers=headers)
            if 200 <= resp.status_code < 300:
                await self.outbox.complete(entry)
                DELIVERED.labels(sub.name).inc()
                DELIVERY_SECONDS.labels(sub.name).observe(max(0, now_ms() - entry.created_ms) / 1000)
                return
            entry.last_error = f"HTTP {resp.status_code}"
            retry_after = _retry_after(resp)
        except httpx.HTTPError as exc:
            entry.last_error = f"{type(exc).__name__}"
        FAILED.labels(sub.name).inc()
        dead = entry.attempts >= a.webhook_max_attempts
        delay = max(
            backoff_delay(entry.attempts, a.webhook_backoff_initial_s, a.webhook_backoff_max_s),
            min(retry_after, a.webhook_backoff_max_s),
        )
        if dead:
            DEAD.labels(sub.name).inc()
            log.warning(
                "webhook %s: delivery %s dead after %d attempts (%s)",
                sub.name,
                entry.id,
                entry.attempts,
                entry.last_error,
            )
        else:
            log.debug("webhook %s: attempt %d failed (%s)", sub.name, entry.attempts, entry.last_error)
        await self.outbox.fail(entry, dead=dead, next_due_ms=now_ms() + int(delay * 1000))


def _retry_after(resp: httpx.Response) -> float:
    """Seconds from a Retry-After header (429/503), 0 when absent or a date we do not parse."""
    value = resp.headers.get("retry-after", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return 0.0
