"""The pure rules behind the console's audit search, report timeline and public page."""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any

from lfr.api.routes_public import finished
from lfr.api.routes_reports import MAX_BINS, MAX_MINUTES, bins, window
from lfr.core.timeutil import ts_from_ms
from lfr.v1.audit_pb2 import AuditEvent
from lfr.watchlist.audit_query import AuditQuery, Row, deployment_of
from lfr.watchlist.deployments import DeploymentStatus

from ..deployment_builders import T0, deployment


def _row(action: str, target: str, actor: str = "Supt Khan", at: datetime = T0, **details: str) -> Row:
    event = AuditEvent(
        seq=1,
        event_id="e",
        actor=actor,
        action=action,
        target=target,
        time=ts_from_ms(int(at.timestamp() * 1000)),
        details=details,
    )
    return Row.of(event)


def test_a_record_belongs_to_a_deployment_by_target_or_by_detail() -> None:
    assert deployment_of("deployment.authorise", "dep-1", {}) == "dep-1"
    assert deployment_of("alert.view_probe", "alert:a1", {"deployment_id": "dep-2"}) == "dep-2"
    assert deployment_of("watchlist.enrol", "wl-a/s1", {}) == ""
    assert _row("alert.view_probe", "alert:a1", deployment_id="dep-2").deployment == "dep-2"


def test_search_filters_by_actor_action_prefix_deployment_and_half_open_time() -> None:
    e = _row("deployment.refuse", "dep-1", actor="Supt Khan")

    def matches(**q: Any) -> bool:
        return AuditQuery(**q).accepts(e)

    assert matches(actor=" supt khan ") and not matches(actor="Supt")
    assert matches(action="deployment.refuse") and matches(action="deployment.")
    assert not matches(action="deployment") and not matches(action="alert.")
    assert matches(deployment="dep-1") and not matches(deployment="dep-2")
    assert matches(since=T0) and not matches(until=T0)  # since inclusive, until exclusive
    assert matches(since=T0.replace(tzinfo=None), until=(T0 + timedelta(seconds=1)).replace(tzinfo=None))
    assert not matches(since=T0 + timedelta(microseconds=1))  # compared to the microsecond, not the ms
    assert matches(actor="supt khan", action="deployment.", deployment="dep-1", since=T0)


def test_timeline_bins_cover_the_window_in_at_most_max_bins() -> None:
    start = int(T0.timestamp())
    plan = bins(start, start + 10 * 60 + 30)
    assert [n for _, n in plan] == [1] * 11 and plan[0][0] == start
    long = bins(start, start + 8 * 3600)
    assert len(long) <= MAX_BINS and sum(n for _, n in long) == 8 * 60
    assert all(b[0] + 60 * b[1] == nb[0] for b, nb in pairwise(long))
    # Older than the per-minute counters are kept: only the kept minutes are read.
    huge = bins(start, start + 30 * 86400)
    assert sum(n for _, n in huge) == MAX_MINUTES and huge[-1][0] + 60 * huge[-1][1] > start + 30 * 86400 - 60
    assert bins(start, start) == [(start, 1)]


def test_report_window_runs_from_the_planned_start_to_the_stop_end_or_now() -> None:
    dep = deployment(started_at=T0 + timedelta(minutes=20), stopped_at=T0 + timedelta(hours=2))
    assert window(dep, now=T0 + timedelta(hours=5)) == (T0, T0 + timedelta(hours=2))
    running = deployment(started_at=T0)
    assert window(running, now=T0 + timedelta(hours=1)) == (T0, T0 + timedelta(hours=1))
    assert window(running, now=T0 + timedelta(days=1)) == (T0, T0 + timedelta(hours=8))


def test_only_deployments_that_ran_and_are_over_are_finished() -> None:
    later = T0 + timedelta(hours=9)
    assert finished(deployment(status=DeploymentStatus.STOPPED), T0)
    assert finished(deployment(status=DeploymentStatus.RUNNING), later)
    assert not finished(deployment(status=DeploymentStatus.RUNNING), T0 + timedelta(hours=1))
    assert not finished(deployment(status=DeploymentStatus.DRAFT), later)
    assert not finished(deployment(status=DeploymentStatus.REFUSED), later)
