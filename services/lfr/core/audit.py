"""Append-only, hash-chained audit log on lfr.audit.v1.

Each record's hash is SHA-256 over the previous hash and a canonical JSON of its own fields, so any
modified, missing or reordered record breaks the chain at a point ``verify`` reports. Writers from any
process serialise on a short Redis lock that also holds the chain head (seq, hash); the topic has one
partition so its order is the chain's order. Audit details never hold biometric data: ids, counts and
reasons only.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer, TopicPartition
from prometheus_client import Counter

from lfr.core import topics
from lfr.core.bus import make_consumer
from lfr.core.config import Settings
from lfr.core.ids import new_id
from lfr.core.redis_client import key as rkey
from lfr.core.redis_client import text
from lfr.core.serde import decode, encode
from lfr.core.timeutil import ms_from_ts, now_ms, ts_from_ms
from lfr.v1.audit_pb2 import AuditEvent

log = logging.getLogger(__name__)
GENESIS = "0" * 64
APPENDED = Counter("lfr_audit_appends_total", "Audit events appended to the chain")
APPEND_FAILURES = Counter(
    "lfr_audit_append_failures_total",
    "Audit events that could not be appended (the action was refused)",
    ["error"],
)


def canonical(event: AuditEvent) -> bytes:
    doc = {
        "seq": event.seq,
        "event_id": event.event_id,
        "actor": event.actor,
        "action": event.action,
        "target": event.target,
        "reason": event.reason,
        "time_ms": ms_from_ts(event.time),
        "details": dict(sorted(event.details.items())),
        "prev_hash": event.prev_hash,
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def chain_hash(event: AuditEvent) -> str:
    return hashlib.sha256(event.prev_hash.encode() + canonical(event)).hexdigest()


class AuditLog:
    """Appends audit events. Cheap to construct; shares the caller's producer and Redis client."""

    LOCK_MS = 5000

    def __init__(self, settings: Settings, producer: AIOKafkaProducer, redis: aioredis.Redis) -> None:
        self.settings = settings
        self.producer = producer
        self.redis = redis
        self._head_key = rkey(settings, "audit", "head")
        self._lock_key = rkey(settings, "audit", "lock")

    async def append(
        self, actor: str, action: str, target: str, reason: str = "", details: Mapping[str, str] | None = None
    ) -> AuditEvent:
        if not actor:
            raise ValueError("audit events need an actor")
        try:
            event = await self._append(actor, action, target, reason, details)
        except Exception as exc:
            APPEND_FAILURES.labels(type(exc).__name__).inc()
            raise
        APPENDED.inc()
        return event

    async def _append(
        self, actor: str, action: str, target: str, reason: str, details: Mapping[str, str] | None
    ) -> AuditEvent:
        token = new_id().encode()
        for _ in range(200):
            if await self.redis.set(self._lock_key, token, nx=True, px=self.LOCK_MS):
                break
            await asyncio.sleep(0.025)
        else:
            raise TimeoutError("audit lock not acquired within 5 s")
        try:
            head = await self.redis.hgetall(self._head_key)
            seq = int(head.get(b"seq", b"0"))
            prev = text(head.get(b"hash"), GENESIS)
            event = AuditEvent(
                seq=seq + 1,
                event_id=new_id(),
                actor=actor,
                action=action,
                target=target,
                reason=reason,
                time=ts_from_ms(now_ms()),
                details={k: str(v) for k, v in (details or {}).items()},
                prev_hash=prev,
            )
            event.hash = chain_hash(event)
            await self.producer.send_and_wait(topics.AUDIT, encode(event), key=None, partition=0)
            await self.redis.hset(self._head_key, mapping={"seq": event.seq, "hash": event.hash})
            log.info("audit seq=%d action=%s target=%s actor=%s", event.seq, action, target, actor)
            return event
        finally:
            if await self.redis.get(self._lock_key) == token:
                await self.redis.delete(self._lock_key)


@dataclass
class VerifyReport:
    ok: bool
    records: int
    first_bad_seq: int | None = None
    problem: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "records": self.records,
            "first_bad_seq": self.first_bad_seq,
            "problem": self.problem,
        }


@dataclass(frozen=True, slots=True)
class Failure:
    """The first bad record: how many records had been read when it was met, its seq, what is wrong."""

    records: int
    seq: int
    problem: str


@dataclass(frozen=True, slots=True)
class ChainState:
    """A chain after ``records`` records: the hash the next must follow, its first seq, its first failure."""

    records: int = 0
    last_hash: str = GENESIS
    first_seq: int = 1
    failure: Failure | None = None

    def then(self, ev: AuditEvent, hash_ok: bool) -> ChainState:
        """This chain with ``ev`` appended (``hash_ok``: its stored hash matches its fields)."""
        n = self.records + 1
        first_seq = ev.seq if self.records == 0 else self.first_seq
        failure = self.failure
        if failure is None:
            if ev.seq != n:
                kind = "missing" if ev.seq > n else "reordered or duplicated"
                failure = Failure(n, n if ev.seq > n else ev.seq, f"record {n} {kind}: found seq {ev.seq}")
            elif ev.prev_hash != self.last_hash:
                failure = Failure(n, ev.seq, f"record {ev.seq} does not follow record {ev.seq - 1}")
            elif not hash_ok:
                failure = Failure(n, ev.seq, f"record {ev.seq} was modified (hash mismatch)")
        return ChainState(n, ev.hash, first_seq, failure)

    def report(self, head_seq: int | None) -> VerifyReport:
        """The verdict for these records against the chain head's ``head_seq`` (None: no head known)."""
        if self.failure is not None:
            f = self.failure
            return VerifyReport(False, f.records, f.seq, f.problem)
        n = self.records
        if head_seq is not None and head_seq > n:
            return VerifyReport(False, n, n + 1, f"records {n + 1}..{head_seq} missing from the log")
        return VerifyReport(True, n)


def verify_events(events: Iterable[AuditEvent], expected_head_seq: int | None = None) -> VerifyReport:
    """Walk the chain; report the first record that was modified, is missing or is out of order."""
    state = ChainState()
    for ev in events:
        state = state.then(ev, chain_hash(ev) == ev.hash)
        if state.failure is not None:
            break
    return state.report(expected_head_seq)


async def read_all(settings: Settings, idle_ms: int = 1500) -> list[AuditEvent]:
    """Read the whole audit topic from the start (no group, nothing committed)."""
    consumer = make_consumer(settings, group_id=None, client_suffix="audit-reader")
    await consumer.start()
    try:
        tp = TopicPartition(topics.AUDIT, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        events: list[AuditEvent] = []
        while True:
            batch = await consumer.getmany(tp, timeout_ms=idle_ms, max_records=1000)
            records = batch.get(tp, [])
            if not records:
                return events
            events.extend(decode(AuditEvent, r.value) for r in records)
    finally:
        await consumer.stop()


async def verify(settings: Settings, redis: aioredis.Redis | None = None) -> VerifyReport:
    events = await read_all(settings)
    head_seq = None
    if redis is not None:
        raw = await redis.hget(rkey(settings, "audit", "head"), "seq")
        head_seq = int(raw) if raw else None
    return verify_events(events, head_seq)
