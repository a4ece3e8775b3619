"""Hash-chain verification that grows one record at a time, so a long-lived reader never re-walks the log.

``verify_events`` (lfr.core.audit) folds a whole list through ``ChainState`` (records seen, last hash,
first failure); a reader that keeps the topic in memory and adds only the records appended since its last
read keeps that state running instead. ``ChainIndex`` keeps two kinds of it:

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

from lfr.core.audit import GENESIS, ChainState, VerifyReport, chain_hash
from lfr.v1.audit_pb2 import AuditEvent
from lfr.watchlist.schemas import AuditCheckOut

WHOLE = "whole audit topic"
OWN = "the chain ending at this installation's head (the topic holds several chains)"


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
