"""The audit log as its readers see it: verify the hash chain, read the latest records.

Verification reads the whole audit topic and recomputes every hash, so it names the first record that was
modified, removed or reordered; it is deliberately not cached. Where several installations share a broker
(different Redis key prefixes), the topic interleaves chains, and this installation's is picked out by the
chain head it keeps in Redis.
"""

from __future__ import annotations

from collections.abc import Sequence

import redis.asyncio as aioredis

from lfr.core.audit import GENESIS, VerifyReport, read_all, verify_events
from lfr.core.config import Settings
from lfr.core.redis_client import key as rkey
from lfr.core.redis_client import text
from lfr.v1.audit_pb2 import AuditEvent
from lfr.watchlist.schemas import AuditCheckOut, AuditEventOut


class AuditTrail:
    """Reads the audit topic and this installation's chain head (Redis); writes nothing."""

    def __init__(self, settings: Settings, redis: aioredis.Redis) -> None:
        self.settings = settings
        self.redis = redis

    async def _head(self) -> tuple[int | None, str | None]:
        head = await self.redis.hgetall(rkey(self.settings, "audit", "head"))
        seq = head.get(b"seq")
        h = head.get(b"hash")
        return (int(seq) if seq else None), (text(h) or None)

    async def verify_audit(self) -> AuditCheckOut:
        events = await read_all(self.settings)
        head_seq, head_hash = await self._head()
        return check_chain(events, head_seq, head_hash)

    async def audit_events(self, limit: int = 50) -> list[AuditEventOut]:
        events = await read_all(self.settings)
        _, head_hash = await self._head()
        chains = sum(1 for e in events if e.prev_hash == GENESIS)
        if chains > 1 and head_hash:
            events = own_chain(events, head_hash)
        return [AuditEventOut.of(e) for e in events[-max(1, limit) :]]


def own_chain(events: Sequence[AuditEvent], head_hash: str) -> list[AuditEvent]:
    """The records linked back from ``head_hash`` by prev_hash, oldest first (stops at a break)."""
    by_hash: dict[str, AuditEvent] = {}
    for e in events:
        by_hash.setdefault(e.hash, e)
    chain: list[AuditEvent] = []
    seen: set[str] = set()
    h = head_hash
    while h != GENESIS and h in by_hash and h not in seen:
        seen.add(h)
        ev = by_hash[h]
        chain.append(ev)
        h = ev.prev_hash
    chain.reverse()
    return chain


def check_chain(events: Sequence[AuditEvent], head_seq: int | None, head_hash: str | None) -> AuditCheckOut:
    """Verify the audit topic; where it carries several chains, verify this installation's.

    Several LFR installations (or test runs) with different Redis key prefixes can share one broker: each
    keeps its own chain head, so the topic interleaves chains. The whole topic is verified first; only when
    that fails *and* the topic holds more than one chain start is the chain ending at this installation's
    head verified instead, and the records of other chains are counted, not silently dropped.
    """
    report = verify_events(events, head_seq)
    starts = sum(1 for e in events if e.seq == 1 and e.prev_hash == GENESIS)
    if report.ok or starts <= 1 or not head_hash:
        return _check_out(report, "whole audit topic", 0)
    chain = own_chain(events, head_hash)
    other = len(events) - len(chain)
    scope = "the chain ending at this installation's head (the topic holds several chains)"
    if not chain:
        return AuditCheckOut(
            ok=False,
            records=0,
            first_bad_seq=head_seq,
            scope=scope,
            other_records=other,
            problem=f"record {head_seq} (this installation's head) is not on the audit topic",
        )
    if chain[0].seq != 1:
        gap = chain[0].seq - 1
        return AuditCheckOut(
            ok=False,
            records=len(chain),
            first_bad_seq=gap,
            scope=scope,
            other_records=other,
            problem=f"record {gap} is missing or was altered: record {gap + 1} follows no "
            "record on the topic",
        )
    return _check_out(verify_events(chain, head_seq), scope, other)


def _check_out(report: VerifyReport, scope: str, other: int) -> AuditCheckOut:
    return AuditCheckOut(
        ok=report.ok,
        records=report.records,
        first_bad_seq=report.first_bad_seq,
        problem=report.problem,
        scope=scope,
        other_records=other,
    )
