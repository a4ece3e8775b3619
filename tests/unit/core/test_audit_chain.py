from __future__ import annotations

from lfr.core.audit import GENESIS, chain_hash, verify_events
from lfr.core.timeutil import ts_from_ms
from lfr.v1.audit_pb2 import AuditEvent


def _chain(n: int) -> list[AuditEvent]:
    prev, out = GENESIS, []
    for i in range(1, n + 1):
        ev = AuditEvent(
            seq=i,
            event_id=f"e{i}",
            actor="pc",
            action="watchlist.enrol",
            target=f"s{i}",
            reason="r",
            time=ts_from_ms(1000 * i),
            details={"n": str(i)},
            prev_hash=prev,
        )
        ev.hash = chain_hash(ev)
        prev = ev.hash
        out.append(ev)
    return out


def test_intact_chain_verifies() -> None:
    report = verify_events(_chain(5), expected_head_seq=5)
    assert report.ok and report.records == 5


def test_modified_record_is_named() -> None:
    events = _chain(5)
    events[2].reason = "changed"
    report = verify_events(events)
    assert not report.ok and report.first_bad_seq == 3 and "modified" in (report.problem or "")


def test_missing_record_is_named() -> None:
    events = _chain(5)
    del events[1]
    report = verify_events(events)
    assert not report.ok and report.first_bad_seq == 2 and "missing" in (report.problem or "")


def test_reordered_records_are_named() -> None:
    events = _chain(5)
    events[1], events[2] = events[2], events[1]
    report = verify_events(events)
    assert not report.ok and report.first_bad_seq == 2  # the first position that breaks the order


def test_truncated_tail_is_detected_against_head() -> None:
    report = verify_events(_chain(3), expected_head_seq=5)
    assert not report.ok and report.first_bad_seq == 4


def test_rehashed_forgery_breaks_the_link() -> None:
    events = _chain(4)
    events[1].target = "forged"
    events[1].hash = chain_hash(events[1])  # a forger recomputes this record's hash...
    report = verify_events(events)
    assert not report.ok and report.first_bad_seq == 3  # ...but the next record no longer follows it
