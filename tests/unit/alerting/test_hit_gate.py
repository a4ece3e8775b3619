"""The alerting stage's deployment rule for hits (lfr.alerting.hit_gate), on deployment records in memory."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from lfr.alerting.hit_gate import FINISHED, NOT_STARTED, UNKNOWN, HitGate, refusal
from lfr.core.timeutil import ts_from_ms
from lfr.v1.hit_pb2 import Hit
from lfr.watchlist.deployments import Deployment, DeploymentStatus

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def _ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


def _dep(**changes: object) -> Deployment:
    base: dict[str, object] = {
        "deployment_id": "dep-1",
        "name": "n",
        "location": "l",
        "purpose": "p",
        "starts_at": NOW - timedelta(hours=1),
        "ends_at": NOW + timedelta(hours=1),
        "authorising_officer": "Supt A",
        "watchlist_ids": ["wl-1"],
        "status": DeploymentStatus.RUNNING,
        "embedder_model": "m",
        "created_by": "c",
        "created_at": NOW - timedelta(hours=2),
        "updated_at": NOW,
        "started_at": NOW - timedelta(minutes=30),
    }
    return Deployment.model_validate({**base, **changes})


@pytest.mark.parametrize(
    ("dep", "captured", "reason"),
    [
        (_dep(), NOW, None),
        (None, NOW, UNKNOWN),
        (_dep(status=DeploymentStatus.AUTHORISED, started_at=None), NOW, NOT_STARTED),
        (_dep(status=DeploymentStatus.DRAFT, started_at=None), NOW, NOT_STARTED),
        # stopped: what was seen while it ran still becomes an alert; what was seen afterwards does not
        (_dep(status=DeploymentStatus.STOPPED, stopped_at=NOW), NOW - timedelta(seconds=1), None),
        (_dep(status=DeploymentStatus.STOPPED, stopped_at=NOW), NOW + timedelta(seconds=1), FINISHED),
        (
            _dep(status=DeploymentStatus.STOPPED, stopped_at=NOW, purged_at=NOW),
            NOW - timedelta(hours=0.1),
            FINISHED,
        ),
        (_dep(), NOW + timedelta(hours=1), FINISHED),  # the window's end is exclusive
        (_dep(), NOW + timedelta(hours=1) - timedelta(milliseconds=1), None),
        # camera clocks run ahead or behind the server's: a capture before the start is not refused
        (_dep(), NOW - timedelta(minutes=45), None),
    ],
)
def test_refusal_rule(dep: Deployment | None, captured: datetime, reason: str | None) -> None:
    got = refusal(dep, "dep-1", _ms(captured))
    assert (got.reason if got else None) == reason
    if got is not None:
        assert "dep-1" in got.detail


class _Records:
    def __init__(self, deps: dict[str, Deployment]) -> None:
        self.deps = deps
        self.asked: list[str] = []

    async def get(self, deployment_id: str) -> Deployment | None:
        self.asked.append(deployment_id)
        return self.deps.get(deployment_id)


async def test_gate_judges_a_hit_at_its_capture_time_else_its_record_time() -> None:
    stopped = _dep(status=DeploymentStatus.STOPPED, stopped_at=NOW)
    gate = HitGate(_Records({"dep-1": stopped}))
    before, after = _ms(NOW) - 1000, _ms(NOW) + 1000
    assert await gate.check(Hit(deployment_id="dep-1", captured_at=ts_from_ms(before)), after) is None
    refused = await gate.check(Hit(deployment_id="dep-1", captured_at=ts_from_ms(after)), before)
    assert refused is not None and refused.reason == FINISHED
    assert await gate.check(Hit(deployment_id="dep-1"), before) is None  # no capture time: the record's
    unknown = await gate.check(Hit(deployment_id="dep-2", captured_at=ts_from_ms(before)), before)
    assert unknown is not None and unknown.reason == UNKNOWN
