"""The pure rules behind the console's audit search, report timeline and public page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

from lfr.api.routes_audit import deployment_of, matches
from lfr.api.routes_public import finished
from lfr.api.routes_reports import MAX_BINS, MAX_MINUTES, bins, window
from lfr.watchlist.deployments import Deployment, DeploymentStatus
from lfr.watchlist.schemas import AuditEventOut

T0 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


def _event(
    action: str, target: str, actor: str = "Supt Khan", at: datetime = T0, **details: str
) -> AuditEventOut:
    return AuditEventOut(
        seq=1,
        event_id="e",
        actor=actor,
        action=action,
        target=target,
        reason="",
        time=at.isoformat(),
        details=details,
        prev_hash="0" * 64,
        hash="1" * 64,
    )


def _dep(**over: object) -> Deployment:
    base: dict[str, object] = dict(
        deployment_id="dep-1",
        name="Cup final",
        location="North gate",
        purpose="wanted persons",
        starts_at=T0,
        ends_at=T0 + timedelta(hours=8),
        authorising_officer="Supt Khan",
        watchlist_ids=["wl-a"],
        embedder_model="sface",
        created_by="pc.smith",
        created_at=T0 - timedelta(days=1),
        updated_at=T0 - timedelta(days=1),
    )
    base.update(over)
    return Deployment.model_validate(base)


def test_a_record_belongs_to_a_deployment_by_target_or_by_detail() -> None:
    assert deployment_of(_event("deployment.authorise", "dep-1")) == "dep-1"
    assert deployment_of(_event("alert.view_probe", "alert:a1", deployment_id="dep-2")) == "dep-2"
    assert deployment_of(_event("watchlist.enrol", "wl-a/s1")) == ""


def test_search_filters_by_actor_action_prefix_deployment_and_half_open_time() -> None:
    e = _event("deployment.refuse", "dep-1", actor="Supt Khan")
    assert matches(e, actor="supt khan") and not matches(e, actor="Supt")
    assert matches(e, action="deployment.refuse") and matches(e, action="deployment.")
    assert not matches(e, action="deployment") and not matches(e, action="alert.")
    assert matches(e, deployment="dep-1") and not matches(e, deployment="dep-2")
    assert matches(e, since=T0) and not matches(e, until=T0)  # since inclusive, until exclusive
    assert matches(e, since=T0.replace(tzinfo=None), until=(T0 + timedelta(seconds=1)).replace(tzinfo=None))


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
    dep = _dep(started_at=T0 + timedelta(minutes=20), stopped_at=T0 + timedelta(hours=2))
    assert window(dep, now=T0 + timedelta(hours=5)) == (T0, T0 + timedelta(hours=2))
    running = _dep(started_at=T0)
    assert window(running, now=T0 + timedelta(hours=1)) == (T0, T0 + timedelta(hours=1))
    assert window(running, now=T0 + timedelta(days=1)) == (T0, T0 + timedelta(hours=8))


def test_only_deployments_that_ran_and_are_over_are_finished() -> None:
    later = T0 + timedelta(hours=9)
    assert finished(_dep(status=DeploymentStatus.STOPPED), T0)
    assert finished(_dep(status=DeploymentStatus.RUNNING), later)
    assert not finished(_dep(status=DeploymentStatus.RUNNING), T0 + timedelta(hours=1))
    assert not finished(_dep(status=DeploymentStatus.DRAFT), later)
    assert not finished(_dep(status=DeploymentStatus.REFUSED), later)
