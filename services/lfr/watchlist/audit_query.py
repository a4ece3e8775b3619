"""What an audit search filters on: actor, action, deployment and a half-open time range.

The reader keeps one small ``Row`` of these fields per record beside the record's bytes, so a search tests
rows without decoding a single record; only the matches are decoded. Actor, action and deployment strings
repeat across thousands of records and are interned, so a row costs little more than its object.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from lfr.core.timeutil import ms_from_ts
from lfr.v1.audit_pb2 import AuditEvent

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


def deployment_of(action: str, target: str, details: Mapping[str, str]) -> str:
    """The deployment a record concerns: its target for deployment changes, a detail for alert records."""
    if action.startswith("deployment."):
        return target
    return details.get("deployment_id", "")


@dataclass(frozen=True, slots=True)
class Row:
    """The searchable fields of one record: actor case-folded, time in microseconds since the epoch."""

    actor: str
    action: str
    deployment: str
    time_us: int

    @classmethod
    def of(cls, ev: AuditEvent) -> Row:
        return cls(
            sys.intern(ev.actor.casefold()),
            sys.intern(ev.action),
            sys.intern(deployment_of(ev.action, ev.target, ev.details)),
            ms_from_ts(ev.time) * 1000,
        )


def _us(t: datetime | None) -> int | None:
    if t is None:
        return None
    aware = t.replace(tzinfo=UTC) if t.tzinfo is None else t
    return (aware - _EPOCH) // _US


@dataclass(frozen=True)
class AuditQuery:
    """Actor matches case-insensitively in full; ``action`` ending in ``.`` (``deployment.``) is a prefix;
    ``since`` is inclusive and ``until`` exclusive; a time without an offset is UTC."""

    actor: str = ""
    action: str = ""
    deployment: str = ""
    since: datetime | None = None
    until: datetime | None = None
    _actor: str = field(init=False, repr=False, compare=False)
    _since: int | None = field(init=False, repr=False, compare=False)
    _until: int | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_actor", self.actor.strip().casefold())
        object.__setattr__(self, "_since", _us(self.since))
        object.__setattr__(self, "_until", _us(self.until))

    def accepts(self, row: Row) -> bool:
        if self._actor and row.actor != self._actor:
            return False
        action = self.action
        if action and not (row.action == action or (action.endswith(".") and row.action.startswith(action))):
            return False
        if self.deployment and row.deployment != self.deployment:
            return False
        if self._since is not None and row.time_us < self._since:
            return False
        return self._until is None or row.time_us < self._until
