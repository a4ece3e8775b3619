"""The audit trail's incremental reader over a stand-in topic: what each request fetches, what it verifies."""

from __future__ import annotations

import asyncio
import tracemalloc

import pytest

from lfr.core.audit import GENESIS, chain_hash, verify_events
from lfr.core.serde import encode
from lfr.core.timeutil import ts_from_ms
from lfr.v1.audit_pb2 import AuditEvent
from lfr.watchlist.audit_chain import ChainIndex
from lfr.watchlist.audit_query import AuditQuery
from lfr.watchlist.audit_reader import AuditReader, Fetched
from lfr.watchlist.audit_trail import AuditTrail


def _event(seq: int, prev: str, tag: str = "a", action: str = "alert.view_probe") -> AuditEvent:
    ev = AuditEvent(
        seq=seq,
        event_id=f"{tag}{seq:08d}",
        actor="pc.smith" if seq % 2 else "Supt Khan",
        action=action,
        target=f"alert:{seq:032x}",
        time=ts_from_ms(1_780_000_000_000 + 1000 * seq),
        details={"deployment_id": f"dep-{seq % 3}", "subject_id": f"s-{seq}"},
        prev_hash=prev,
    )
    ev.hash = chain_hash(ev)
    return ev


def _chain(n: int, tag: str = "a", after: AuditEvent | None = None) -> list[AuditEvent]:
    out: list[AuditEvent] = []
    prev, first = (after.hash, after.seq + 1) if after else (GENESIS, 1)
    for seq in range(first, first + n):
        ev = _event(seq, prev, tag)
        prev = ev.hash
        out.append(ev)
    return out


class Topic:
    """One partition: offsets from ``log_start``; counts what each fetch hands out."""

    def __init__(self, events: list[AuditEvent]) -> None:
        self.log_start = 0
        self.records: list[bytes] = [encode(e) for e in events]
        self.returned: list[int] = []  # records handed out per fetch

    def append(self, *events: AuditEvent) -> None:
        self.records.extend(encode(e) for e in events)

    async def fetch(self, start: int) -> Fetched:
        await asyncio.sleep(0.001)
        first = max(start, self.log_start)
        got = [(o, bytes(bytearray(self.records[o]))) for o in range(first, len(self.records))]  # as received
        self.returned.append(len(got))
        return Fetched(self.log_start, len(self.records), got)


class Head:
    """The Redis hash ``audit:head`` as AuditLog leaves it."""

    def __init__(self, ev: AuditEvent | None = None) -> None:
        self.ev = ev

    async def hgetall(self, key: str) -> dict[bytes, bytes]:
        if self.ev is None:
            return {}
        return {b"seq": str(self.ev.seq).encode(), b"hash": self.ev.hash.encode()}


def _trail(topic: Topic, head: Head) -> AuditTrail:
    from lfr.core.config import Settings

    return AuditTrail(Settings(), head, topic)  # type: ignore[arg-type]


async def test_a_second_request_fetches_only_the_new_records() -> None:
    events = _chain(200)
    topic, head = Topic(events), Head(events[-1])
    trail = _trail(topic, head)
    first = await trail.search(AuditQuery(), limit=5)
    assert [e.seq for e in first] == [196, 197, 198, 199, 200] and topic.returned == [200]

    more = _chain(3, after=events[-1])
    topic.append(*more)
    head.ev = more[-1]
    latest = await trail.audit_events(2)
    assert [e.seq for e in latest] == [202, 203]
    assert topic.returned[1:] == [4]  # the three new records and the anchor, the last one already read
    report = await trail.verify_audit()
    assert report.ok and report.records == 203 and topic.returned[2:] == [1]  # nothing new: the anchor only
    assert trail.reader.rereads == 0


async def test_a_record_modified_or_out_of_order_after_the_first_read_is_named() -> None:
    events = _chain(10)
    topic, head = Topic(events), Head(events[-1])
    trail = _trail(topic, head)
    assert (await trail.verify_audit()).ok

    a, b, c = _chain(3, after=events[-1])  # seq 11, 12, 13
    b.reason = "rewritten after hashing"
    topic.append(a, b, c)
    head.ev = c
    report = await trail.verify_audit()
    assert not report.ok and report.first_bad_seq == 12 and "modified" in (report.problem or "")
    assert topic.returned == [10, 4]

    d, e, f = _chain(3, after=c)  # seq 14, 15, 16 written as 14, 16, 15
    topic.append(d, f, e)
    head.ev = f
    assert (await trail.verify_audit()).first_bad_seq == 12  # the first failure stays the one named
    ordered = Topic([*events, a, c])  # record 12 removed, the rest in order
    report = await _trail(ordered, Head(c)).verify_audit()
    assert not report.ok and report.first_bad_seq == 12 and "missing" in (report.problem or "")

    swapped = _chain(3)
    topic2, head2 = Topic(swapped[:1]), Head(swapped[0])
    trail2 = _trail(topic2, head2)
    assert (await trail2.verify_audit()).ok
    topic2.append(swapped[2], swapped[1])  # records 3 and 2 in the wrong order
    head2.ev = swapped[1]
    report = await trail2.verify_audit()
    assert not report.ok and report.first_bad_seq == 2 and "missing" in (report.problem or "")
    assert topic2.returned == [1, 3]


async def test_a_topic_changed_under_the_reader_is_read_again() -> None:
    events = _chain(20)
    topic, head = Topic(events), Head(events[-1])
    trail = _trail(topic, head)
    assert (await trail.verify_audit()).ok

    # The last record kept (the anchor) rewritten in place: the reader starts over and names it.
    forged = AuditEvent()
    forged.CopyFrom(events[-1])
    forged.actor = "someone else"
    topic.records[-1] = encode(forged)
    report = await trail.verify_audit()
    assert trail.reader.rereads == 1 and not report.ok and report.first_bad_seq == 20

    # Records deleted from the start of the log: read again, the chain's start is missing.
    topic.records[-1] = encode(events[-1])
    topic.log_start = 5
    report = await trail.verify_audit()
    assert trail.reader.rereads == 2 and not report.ok and report.first_bad_seq == 1

    # An earlier record rewritten in place is below the anchor: only a full read sees it.
    topic.log_start = 0
    assert (await trail.verify_audit()).ok
    early = AuditEvent()
    early.CopyFrom(events[3])
    early.reason = "edited on disk"
    topic.records[3] = encode(early)
    assert (await trail.verify_audit()).ok
    full = await trail.verify_audit(full=True)
    assert not full.ok and full.first_bad_seq == 4 and topic.returned[-1] == 20


async def test_concurrent_requests_share_refreshes() -> None:
    events = _chain(50)
    topic, head = Topic(events), Head(events[-1])
    trail = _trail(topic, head)
    results = await asyncio.gather(*(trail.search(AuditQuery(actor="supt khan"), None) for _ in range(20)))
    assert all(len(r) == 25 for r in results)
    # The first refresh reads everything; the 19 requests that arrived during it share one more.
    assert topic.returned == [50, 1]


async def test_search_filters_and_limits_newest_first_within_this_installations_chain() -> None:
    ours, theirs = _chain(30, "a"), _chain(30, "b")
    interleaved = [e for pair in zip(ours, theirs, strict=True) for e in pair]
    topic, head = Topic(interleaved), Head(ours[-1])
    trail = _trail(topic, head)
    found = await trail.search(AuditQuery(deployment="dep-0"), limit=3)
    assert [e.event_id for e in found] == ["a00000024", "a00000027", "a00000030"]
    report = await trail.verify_audit()
    assert report.ok and report.records == 30 and report.other_records == 30

    more = _chain(2, "a", after=ours[-1])
    topic.append(*more)
    head.ev = more[-1]
    latest = await trail.audit_events(3)
    assert [e.event_id for e in latest] == ["a00000030", "a00000031", "a00000032"]


@pytest.mark.parametrize(
    "tamper",
    ["none", "modify", "delete", "swap", "duplicate", "truncate", "relink"],
)
def test_the_running_state_gives_verify_events_verdict(tamper: str) -> None:
    events = _chain(6)
    head = events[-1].seq
    if tamper == "modify":
        events[2].target = "elsewhere"
    elif tamper == "delete":
        del events[3]
    elif tamper == "swap":
        events[1], events[2] = events[2], events[1]
    elif tamper == "duplicate":
        events.insert(4, events[3])
    elif tamper == "truncate":
        events = events[:4]
    elif tamper == "relink":
        events[4].prev_hash = "f" * 64
        events[4].hash = chain_hash(events[4])
    assert ChainIndex.of(events).whole.report(head) == verify_events(events, head)


async def test_memory_per_record_is_bounded() -> None:
    """What the reader keeps per record (bytes, search row, chain state): the figure its docstring gives."""
    n = 5000
    events = _chain(n)
    topic = Topic(events)
    reader = AuditReader(topic)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    await reader.refresh()
    per_record = (tracemalloc.get_traced_memory()[0] - before) / n
    tracemalloc.stop()
    assert len(reader) == n and per_record < 1000, per_record
