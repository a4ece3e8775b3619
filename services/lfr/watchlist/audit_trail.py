"""The audit log as its readers see it: verify the hash chain, read the latest records, search them.

The trail owns one ``AuditReader`` (lfr.watchlist.audit_reader), which keeps the records read so far with
their running chain state and fetches only what was appended since, so a request costs the new records,
not the log. Verification still names the first record that was modified, removed or reordered: each
record is hashed once as it arrives, and a topic that changed under the reader is read again from its
start (``verify_audit(full=True)`` forces that). Where several installations share a broker (different
Redis key prefixes), the topic interleaves chains, and this installation's is picked out by the chain head
it keeps in Redis.
"""

from __future__ import annotations

from collections.abc import Sequence

import redis.asyncio as aioredis

from lfr.core.config import Settings
from lfr.core.redis_client import key as rkey
from lfr.core.redis_client import text
from lfr.v1.audit_pb2 import AuditEvent
from lfr.watchlist.audit_chain import ChainIndex
from lfr.watchlist.audit_query import AuditQuery
from lfr.watchlist.audit_reader import AuditReader, AuditSource, KafkaAuditSource
from lfr.watchlist.schemas import AuditCheckOut, AuditEventOut


class AuditTrail:
    """Reads the audit topic (incrementally) and this installation's chain head (Redis); writes nothing."""

    def __init__(self, settings: Settings, redis: aioredis.Redis, source: AuditSource | None = None) -> None:
        self.settings = settings
        self.redis = redis
        self.reader = AuditReader(source or KafkaAuditSource(settings))

    async def _head(self) -> tuple[int | None, str | None]:
        head = await self.redis.hgetall(rkey(self.settings, "audit", "head"))
        seq = head.get(b"seq")
        h = head.get(b"hash")
        return (int(seq) if seq else None), (text(h) or None)

    async def verify_audit(self, full: bool = False) -> AuditCheckOut:
        """The chain's verdict; ``full`` reads and hashes the whole topic again rather than what is new.

        The head is read before the topic: a record is on the topic before the head names it, so the
        refresh that follows always holds the head's record.
        """
        head_seq, head_hash = await self._head()
        await self.reader.refresh(full)
        return self.reader.chain.check(head_seq, head_hash)

    async def audit_events(self, limit: int = 50) -> list[AuditEventOut]:
        """The latest ``limit`` records, oldest first."""
        return await self.search(AuditQuery(), max(1, limit))

    async def search(self, query: AuditQuery, limit: int | None = None) -> list[AuditEventOut]:
        """This installation's records that match, oldest first; with ``limit``, the newest ``limit``."""
        _, head_hash = await self._head()
        await self.reader.refresh()
        chain = self.reader.chain
        scope = chain.own_chain(head_hash) if chain.genesis_records > 1 and head_hash else None
        return [AuditEventOut.of(e) for e in self.reader.select(query, scope, limit)]


def own_chain(events: Sequence[AuditEvent], head_hash: str) -> list[AuditEvent]:
    """The records linked back from ``head_hash`` by prev_hash, oldest first (stops at a break)."""
    return [events[i] for i in ChainIndex.of(events).own_chain(head_hash)]


def check_chain(events: Sequence[AuditEvent], head_seq: int | None, head_hash: str | None) -> AuditCheckOut:
    """Verify a list of audit records as the reader verifies the topic (``ChainIndex.check``).

    The whole list is verified first; only when that fails *and* it holds more than one chain start is the
    chain ending at this installation's head verified instead, and the records of other chains are
    counted, not silently dropped.
    """
    return ChainIndex.of(events).check(head_seq, head_hash)
