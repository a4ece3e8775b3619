"""Which hits may become alerts: those of a deployment that exists and was running when the face was seen.

The embedder raises hits only for live deployments, and a Kafka ACL should let only the embedder write
``lfr.hits.v1``; this gate is the second line behind both. A hit naming a deployment that does not exist
(a forged or misrouted record), that was never started, that was purged, or whose face was captured after
the deployment was stopped or its window closed would otherwise open an alert nobody authorised, or bring
back alerts a purge removed. Such hits are dead-lettered with the reason, never alerted.

A hit captured while its deployment ran is still alerted when it arrives after the stop: a stop must not
lose the sightings already in flight. Capture times before the start are not refused, because camera and
server clocks differ by more than the time between a start and the first crop.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from lfr.alerting.dedupe import event_time_ms
from lfr.v1.hit_pb2 import Hit
from lfr.watchlist.deployments import Deployment

UNKNOWN = "deployment_unknown"
NOT_STARTED = "deployment_not_started"
FINISHED = "deployment_finished"


class DeploymentRecords(Protocol):
    async def get(self, deployment_id: str) -> Deployment | None:
        """The deployment's record, None when there is none (invalid ids included)."""
        ...


@dataclass(frozen=True)
class Refusal:
    reason: str
    detail: str


def _ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


def refusal(dep: Deployment | None, deployment_id: str, captured_ms: int) -> Refusal | None:
    """Why a hit of ``deployment_id`` captured at ``captured_ms`` must not be alerted; None if it may."""
    if dep is None:
        return Refusal(UNKNOWN, f"no deployment {deployment_id!r}")
    if dep.purged_at is not None:
        return Refusal(FINISHED, f"deployment {deployment_id} was purged")
    if dep.started_at is None:
        return Refusal(NOT_STARTED, f"deployment {deployment_id} was never started ({dep.status})")
    if dep.stopped_at is not None and captured_ms > _ms(dep.stopped_at):
        return Refusal(FINISHED, f"captured after deployment {deployment_id} was stopped")
    if captured_ms >= _ms(dep.ends_at):
        return Refusal(FINISHED, f"captured after deployment {deployment_id}'s window ended")
    return None


class HitGate:
    """Looks each hit's deployment up (through a short-lived cache: a flood costs one read per TTL)."""

    def __init__(self, records: DeploymentRecords) -> None:
        self.records = records

    async def check(self, hit: Hit, record_ms: int) -> Refusal | None:
        """Judged at the time the deduper files the hit under (capture, else hit, else record time)."""
        captured = event_time_ms(hit, record_ms)
        return refusal(await self.records.get(hit.deployment_id), hit.deployment_id, captured)
