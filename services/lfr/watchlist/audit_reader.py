"""An incremental reader of the audit topic: each refresh fetches only the records appended since the last.

Why: the API served every audit search and every verification by reading lfr.audit.v1 from its first
record (and waiting out an idle timeout at the end), so a request cost the whole log. The reader keeps what
it has read and the running chain state (``ChainIndex``), and a refresh asks the broker for the offsets
past its last one, so a request costs the records added since the previous request.

What is kept, per record: its bytes as read (decoded again only when a search returns it), a ``Row`` of
the searchable fields, and its chain state. Measured at about 0.83 KB per record with 300-byte records
(``tests/unit/watchlist/test_audit_reader.py`` holds it under 1 KB), so memory grows with the audit log:
about 85 MB per 100,000 records. The audit topic is kept forever (docs/operations.md), so a force whose log
outgrows that should page old payloads out to the broker (keep rows and chain states, fetch bytes by
offset when a search returns them).

Trust: Kafka never changes a record at an offset once written, so records already verified are not
re-hashed. What could still change under the reader is the topic itself (deleted and recreated, records
deleted from its start, a rewritten log segment). Each refresh therefore fetches again the last record it
holds (the anchor) with the new ones and checks that the topic's start and end offsets are where they
were; any difference discards the kept state and reads the topic from its start. ``refresh(full=True)``
does that unconditionally, for an auditor who wants the whole log re-hashed now.

One refresh runs at a time (an ``asyncio.Lock``); a request that arrives while one is running waits and
then runs one more (the running one may have started before its records were written), and the requests
queued behind that share it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from aiokafka import TopicPartition

from lfr.core import topics
from lfr.core.bus import make_consumer
from lfr.core.config import Settings
from lfr.core.serde import decode
from lfr.v1.audit_pb2 import AuditEvent
from lfr.watchlist.audit_chain import ChainIndex
from lfr.watchlist.audit_query import AuditQuery, Row


@dataclass(frozen=True)
class Fetched:
    """The log's first and next offsets then, and its (offset, bytes) records from the asked offset."""

    log_start: int
    end: int
    records: list[tuple[int, bytes]]


class AuditSource(Protocol):
    async def fetch(self, start: int) -> Fetched:
        """Every record from offset ``start`` (or the log's first, if later) to the current end."""
        ...


class KafkaAuditSource:
    """Reads lfr.audit.v1 (one partition) up to its high watermark: no consumer group, no idle wait.

    The end is the high watermark of the fetch responses. The listed end offset is only a lower bound and
    an emptiness test: the embedded broker (Tansu) lists the last batch's base offset + 1 as the end.
    """

    def __init__(self, settings: Settings, timeout_s: float = 30.0) -> None:
        self.settings = settings
        self.timeout_s = timeout_s

    async def fetch(self, start: int) -> Fetched:
        consumer = make_consumer(self.settings, group_id=None, client_suffix="audit-reader")
        await consumer.start()
        try:
            tp = TopicPartition(topics.AUDIT, 0)
            consumer.assign([tp])
            log_start = (await consumer.beginning_offsets([tp]))[tp]
            end = (await consumer.end_offsets([tp]))[tp]
            records: list[tuple[int, bytes]] = []
            if end > log_start:
                consumer.seek(tp, max(start, log_start))
                async with asyncio.timeout(self.timeout_s):
                    while True:
                        batch = await consumer.getmany(tp, timeout_ms=1000, max_records=1000)
                        got = batch.get(tp, [])
                        records.extend((r.offset, r.value or b"") for r in got)
                        end = max(end, consumer.highwater(tp) or 0)
                        if await consumer.position(tp) >= end:
                            break
            return Fetched(log_start, end, records)
        finally:
            await consumer.stop()


class _Kept:
    """What has been read: the records' bytes, their rows, their chain states, and the offsets covered."""

    def __init__(self) -> None:
        self.log_start = 0  # the topic's first offset when it was first read
        self.next_offset = 0
        self.payloads: list[bytes] = []
        self.rows: list[Row] = []
        self.chain = ChainIndex()

    def add(self, offset: int, raw: bytes) -> None:
        ev = decode(AuditEvent, raw)
        self.chain.add(ev)
        self.rows.append(Row.of(ev))
        self.payloads.append(raw)
        self.next_offset = offset + 1

    def continues(self, fetched: Fetched) -> bool:
        """Whether ``fetched`` (asked from the anchor, the last record kept) extends exactly what was read:
        the same first offset, no end before ours, and the anchor's bytes unchanged."""
        anchor = self.next_offset - 1
        return (
            fetched.log_start == self.log_start
            and fetched.end >= self.next_offset
            and bool(fetched.records)
            and fetched.records[0] == (anchor, self.payloads[-1])
        )


class AuditReader:
    """The audit topic as read so far, brought up to date by ``refresh``; the queries are synchronous."""

    def __init__(self, source: AuditSource) -> None:
        self.source = source
        self._kept = _Kept()
        self._lock = asyncio.Lock()
        self._begun = 0  # refreshes begun
        self._done = 0  # the number of the last refresh finished
        self.fetched = 0  # records the source returned, anchors included (what a refresh cost)
        self.rereads = 0  # refreshes that read the topic from its start again

    @property
    def chain(self) -> ChainIndex:
        return self._kept.chain

    def __len__(self) -> int:
        return len(self._kept.rows)

    async def refresh(self, full: bool = False) -> None:
        """Read what was appended since the last refresh (``full``: everything, re-hashed)."""
        ticket = self._begun
        async with self._lock:
            if self._done > ticket and not full:
                return  # a refresh that began after this call did, has finished
            self._begun += 1
            number = self._begun
            await self._read(full)
            self._done = number

    async def _read(self, full: bool) -> None:
        kept = self._kept
        if kept.payloads and not full:
            fetched = await self.source.fetch(kept.next_offset - 1)
            self.fetched += len(fetched.records)
            if kept.continues(fetched):
                for offset, raw in fetched.records[1:]:
                    kept.add(offset, raw)
                return
        if kept.payloads:
            self.rereads += 1
        fetched = await self.source.fetch(0)
        self.fetched += len(fetched.records)
        fresh = _Kept()
        fresh.log_start = fetched.log_start
        for offset, raw in fetched.records:
            fresh.add(offset, raw)
        self._kept = fresh  # swapped whole: a query never sees half a re-read

    def select(self, query: AuditQuery, scope: Sequence[int] | None, limit: int | None) -> list[AuditEvent]:
        """The records of ``scope`` (indices, oldest first; None: all) that match, oldest first; with
        ``limit``, the newest ``limit`` of them. Only the matches are decoded."""
        kept = self._kept
        indices: Sequence[int] = range(len(kept.rows)) if scope is None else scope
        found: list[int] = []
        for i in reversed(indices):
            if query.accepts(kept.rows[i]):
                found.append(i)
                if limit is not None and len(found) >= limit:
                    break
        return [decode(AuditEvent, kept.payloads[i]) for i in reversed(found)]
