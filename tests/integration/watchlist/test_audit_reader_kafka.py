"""The audit trail's incremental reader on the real broker: a request after new appends fetches only them,
the chain still verifies, and a search costs far less than reading the whole topic (the old way)."""

from __future__ import annotations

import asyncio
import time

import pytest

from lfr.core import topics
from lfr.core.audit import GENESIS, AuditLog, chain_hash, read_all
from lfr.core.bus import make_producer
from lfr.core.config import Settings
from lfr.core.redis_client import make_redis
from lfr.core.serde import encode
from lfr.core.timeutil import now_ms, ts_from_ms
from lfr.v1.audit_pb2 import AuditEvent
from lfr.watchlist.audit_query import AuditQuery
from lfr.watchlist.audit_reader import KafkaAuditSource
from lfr.watchlist.audit_trail import AuditTrail, own_chain

pytestmark = pytest.mark.integration


async def test_requests_after_appends_fetch_only_the_new_records(settings_for, record_property) -> None:
    settings: Settings = settings_for()
    redis = make_redis(settings)
    producer = make_producer(settings, "audit-reader-test")
    await producer.start()
    try:
        audit = AuditLog(settings, producer, redis)
        for i in range(5):
            await audit.append("pc.smith", "watchlist.enrol", f"wl-a/s{i}")
        trail = AuditTrail(settings, redis)
        assert [e.target for e in await trail.audit_events(5)] == [f"wl-a/s{i}" for i in range(5)]
        assert (await trail.verify_audit()).ok
        on_topic = len(trail.reader)
        fetched = trail.reader.fetched

        for i in range(3):
            await audit.append("Supt Khan", "deployment.authorise", f"dep-{i}")
        found = await trail.search(AuditQuery(actor="supt khan", action="deployment."), limit=10)
        assert [e.target for e in found] == ["dep-0", "dep-1", "dep-2"]
        assert trail.reader.fetched - fetched == 4  # the three new records and the anchor
        assert len(trail.reader) == on_topic + 3 and trail.reader.rereads == 0
        report = await trail.verify_audit()
        assert report.ok and report.records == 8 and report.other_records == len(trail.reader) - 8

        # A full read re-hashes the whole topic and agrees with the incremental state.
        assert (await trail.verify_audit(full=True)).model_dump() == report.model_dump()

        # Cost of one search: the whole-topic read the route used to do, against a refresh of nothing new.
        head = (await redis.hgetall(f"{settings.redis.key_prefix}audit:head"))[b"hash"].decode()
        t0 = time.perf_counter()
        old = [e for e in own_chain(await read_all(settings), head) if e.actor == "Supt Khan"]
        old_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        rounds = 5
        for _ in range(rounds):
            new = await trail.search(AuditQuery(actor="supt khan"))
        new_s = (time.perf_counter() - t0) / rounds
        assert [e.event_id for e in old] == [e.event_id for e in new]
        record_property("audit_records_on_topic", len(trail.reader))
        record_property("search_full_read_s", round(old_s, 4))
        record_property("search_incremental_s", round(new_s, 4))
        assert new_s < old_s
    finally:
        await producer.stop()
        await redis.aclose()


async def test_the_source_reads_to_the_end_of_a_batch(stack_settings: Settings) -> None:
    """Records sent as one batch: the embedded broker lists the batch's base offset + 1 as the end offset,
    so the source must read to the fetch responses' high watermark instead."""
    prev, events = GENESIS, []
    for seq in range(1, 41):
        ev = AuditEvent(seq=seq, event_id=f"batch{seq}", actor="bench", action="test.batch", target=str(seq))
        ev.time.CopyFrom(ts_from_ms(now_ms()))
        ev.prev_hash = prev
        ev.hash = prev = chain_hash(ev)
        events.append(ev)
    source = KafkaAuditSource(stack_settings)
    before = (await source.fetch(0)).records
    producer = make_producer(stack_settings, "audit-batch-test")
    await producer.start()
    try:
        sent = [await producer.send(topics.AUDIT, encode(e), partition=0) for e in events]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()
    start = before[-1][0] + 1 if before else 0
    fetched = await source.fetch(start)
    assert [raw for _, raw in fetched.records[-40:]] == [encode(e) for e in events]
    assert fetched.end == fetched.records[-1][0] + 1
