"""The subscriber's de-duplication rule: act on an alert revision only if it is newer than any seen.

Delivery is at least once: after a producer crash the same ``(alert_id, revision)`` can arrive again, and
revisions written by the API (adjudications) and by the alerting stage (more sightings) may arrive out of
order across the raised and updates topics. Keeping the highest revision per ``alert_id`` makes all of
that harmless. Memory is bounded: the least recently changed alerts are forgotten first, so only a record
older than ``max_alerts`` other alerts can pass twice, which handlers tolerate anyway (at least once).
"""

from __future__ import annotations

from collections import OrderedDict


class LatestRevisions:
    """Highest revision seen per alert_id, with a bound on how many alert ids are remembered."""

    def __init__(self, max_alerts: int = 100_000) -> None:
        if max_alerts < 1:
            raise ValueError("max_alerts must be at least 1")
        self.max_alerts = max_alerts
        self._latest: OrderedDict[str, int] = OrderedDict()

    def is_newer(self, alert_id: str, revision: int) -> bool:
        """True when this revision has not been acted on: a new alert, or a higher revision of one."""
        seen = self._latest.get(alert_id)
        return seen is None or revision > seen

    def known(self, alert_id: str) -> bool:
        return alert_id in self._latest

    def record(self, alert_id: str, revision: int) -> None:
        """Remember a revision once its handler has returned (never lowers what is remembered)."""
        seen = self._latest.get(alert_id)
        if seen is not None and seen >= revision:
            return
        self._latest[alert_id] = revision
        self._latest.move_to_end(alert_id)
        while len(self._latest) > self.max_alerts:
            self._latest.popitem(last=False)

    def get(self, alert_id: str) -> int | None:
        return self._latest.get(alert_id)

    def __len__(self) -> int:
        return len(self._latest)
