"""Hash-chain verification that grows one record at a time, so a long-lived reader never re-walks the log.

``verify_events`` (lfr.core.audit) walks a whole list; a reader that keeps the topic in memory and adds
only the records appended since its last read needs the same rules as a running state. ``ChainState`` is
that state (records seen, last hash, first failure) and ``ChainIndex`` keeps two kinds of it:

- the whole topic in topic order (one running state), which is what a single installation verifies;
- for every record, the state of the chain that ends at it, following ``prev_hash`` links, so that where
  several installations share one broker (different Redis key prefixes, interleaved chains) the chain
  ending at this installation's head is verified in O(1) per query.

A record is linked to the first earlier record carrying its ``prev_hash``. A record whose predecessor is
not (yet) on the topic starts a chain of its own, so a removed, altered or reordered record shows as a gap
at the point it breaks the chain.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable
from dataclasses import dataclass

from lfr.core.audit import GENESIS, VerifyReport, chain_hash
from lfr.v1.audit_pb2 import AuditEvent
from lfr.watchlist.schemas import AuditCheckOut

WHOLE = "whole audit topic"
OWN = "the chain ending at this installation's head (the topic holds several chains)"


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
        """The verdict, as ``verify_events`` gives it for the same records and head."""
        if self.failure is not None:
            f = self.failure
            return VerifyReport(False, f.records, f.seq, f.problem)
        n = self.records
        if head_seq is not None and head_seq > n:
            return VerifyReport(False, n, n + 1, f"records {n + 1}..{head_seq} missing from the log")
        return VerifyReport(True, n)


class ChainIndex:
    """The chain state of every record added so far; memory: one small state and two ints per record."""

    def __init__(self) -> None:
        self.whole = ChainState()
        self.genesis_records = 0  # records whose prev_hash is GENESIS
        self.chain_starts = 0  # those with seq 1 too
        self._by_hash: dict[str, int] = {}
        self._states: list[ChainState] = []
        self._pred = array("q")  # index of each record's predecessor, -1 for a chain start
        self._own: tuple[int, list[int]] = (-1, [])  # (head index, the chain's indices) of the last walk

    def __len__(self) -> int:
        return len(self._states)

    @classmethod
    def of(cls, events: Iterable[AuditEvent]) -> ChainIndex:
        index = cls()
        for ev in events:
            index.add(ev)
        return index

    def add(self, ev: AuditEvent) -> None:
        """Fold one record in, in topic order: its hash is recomputed here, once."""
        hash_ok = chain_hash(ev) == ev.hash
        self.whole = self.whole.then(ev, hash_ok)
        if ev.prev_hash == GENESIS:
            self.genesis_records += 1
            self.chain_starts += ev.seq == 1
        pred = -1 if ev.prev_hash == GENESIS else self._by_hash.get(ev.prev_hash, -1)
        start = ChainState() if pred < 0 else self._states[pred]
        self._by_hash.setdefault(ev.hash, len(self._states))
        self._states.append(start.then(ev, hash_ok))
        self._pred.append(pred)

    def check(self, head_seq: int | None, head_hash: str | None) -> AuditCheckOut:
        """The whole topic's verdict; where it fails and the topic holds several chains, this one's."""
        report = self.whole.report(head_seq)
        if report.ok or self.chain_starts <= 1 or not head_hash:
            return _check_out(report, WHOLE, 0)
        at = self._by_hash.get(head_hash)
        if at is None:
            return AuditCheckOut(
                ok=False,
                records=0,
                first_bad_seq=head_seq,
                scope=OWN,
                other_records=len(self),
                problem=f"record {head_seq} (this installation's head) is not on the audit topic",
            )
        own = self._states[at]
        other = len(self) - own.records
        if own.first_seq != 1:
            gap = own.first_seq - 1
            return AuditCheckOut(
                ok=False,
                records=own.records,
                first_bad_seq=gap,
                scope=OWN,
                other_records=other,
                problem=f"record {gap} is missing or was altered: record {gap + 1} follows no "
                "record on the topic",
            )
        return _check_out(own.report(head_seq), OWN, other)

    def own_chain(self, head_hash: str) -> list[int]:
        """Indices of the records linked back from ``head_hash``, oldest first (stops at a break).

        The last walk is kept: a later head walks back only until it meets the previous head, so following
        a growing chain costs the new records, not the whole chain. The list is the index's own: read it
        before the next call, never change it.
        """
        at = self._by_hash.get(head_hash, -1)
        last_head, chain = self._own
        walked: list[int] = []
        while at >= 0 and at != last_head:
            walked.append(at)
            at = self._pred[at]
        walked.reverse()
        if at >= 0:
            chain.extend(walked)
        else:
            chain = walked
        self._own = (chain[-1] if chain else -1, chain)
        return chain


def _check_out(report: VerifyReport, scope: str, other: int) -> AuditCheckOut:
    return AuditCheckOut(
        ok=report.ok,
        records=report.records,
        first_bad_seq=report.first_bad_seq,
        problem=report.problem,
        scope=scope,
        other_records=other,
    )
