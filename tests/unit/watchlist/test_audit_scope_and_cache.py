"""Audit verification over a topic shared by several chains, and the embedder's cached deployment view."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from lfr.core.audit import GENESIS, chain_hash
from lfr.core.timeutil import ts_from_ms
from lfr.v1.audit_pb2 import AuditEvent
from lfr.watchlist.audit_trail import check_chain, own_chain
from lfr.watchlist.deployments import Deployment, DeploymentStatus, LiveDeployments

from ..deployment_builders import T0, deployment
from .conftest import COSINE, FakeCard


def _chain(tag: str, n: int) -> list[AuditEvent]:
    prev, out = GENESIS, []
    for i in range(1, n + 1):
        ev = AuditEvent(
            seq=i,
            event_id=f"{tag}{i}",
            actor="pc",
            action="watchlist.enrol",
            target=f"{tag}/{i}",
            time=ts_from_ms(1000 * i),
            details={"i": str(i)},
            prev_hash=prev,
        )
        ev.hash = chain_hash(ev)
        prev = ev.hash
        out.append(ev)
    return out


def _interleave(a: list[AuditEvent], b: list[AuditEvent]) -> list[AuditEvent]:
    out: list[AuditEvent] = []
    for i in range(max(len(a), len(b))):
        out.extend(x[i] for x in (a, b) if i < len(x))
    return out


def test_single_chain_is_verified_whole() -> None:
    a = _chain("a", 4)
    report = check_chain(a, 4, a[-1].hash)
    assert report.ok and report.records == 4 and report.scope == "whole audit topic"


def test_shared_topic_verifies_this_installations_chain() -> None:
    a, b = _chain("a", 4), _chain("b", 3)
    report = check_chain(_interleave(a, b), 4, a[-1].hash)
    assert (
        report.ok and report.records == 4 and report.other_records == 3 and "several chains" in report.scope
    )
    assert [e.event_id for e in own_chain(_interleave(a, b), b[-1].hash)] == ["b1", "b2", "b3"]


def test_modified_record_in_own_chain_is_named() -> None:
    a, b = _chain("a", 5), _chain("b", 3)
    a[2].reason = "rewritten"
    report = check_chain(_interleave(a, b), 5, a[-1].hash)
    assert not report.ok and report.first_bad_seq == 3 and "modified" in (report.problem or "")


def test_removed_record_in_own_chain_is_named() -> None:
    a, b = _chain("a", 5), _chain("b", 3)
    del a[1]
    report = check_chain(_interleave(a, b), 5, a[-1].hash)
    assert not report.ok and report.first_bad_seq == 2 and "missing" in (report.problem or "")


def test_truncated_head_is_detected() -> None:
    a, b = _chain("a", 5), _chain("b", 3)
    head_hash = a[-1].hash
    report = check_chain(_interleave(a[:-1], b), 5, head_hash)
    assert not report.ok and report.first_bad_seq == 5


def test_single_chain_tampering_is_reported_by_core_verify() -> None:
    a = _chain("a", 3)
    a[1].actor = "someone else"
    report = check_chain(a, 3, a[-1].hash)
    assert not report.ok and report.first_bad_seq == 2 and report.scope == "whole audit topic"


# ---- LiveDeployments ----------------------------------------------------------------------------------


def _dep(
    status: DeploymentStatus = DeploymentStatus.RUNNING, model: str = "fake-l2", **over: object
) -> Deployment:
    """A one-hour deployment from T0, running unless told otherwise."""
    return deployment(status=status, embedder_model=model, ends_at=T0 + timedelta(hours=1), **over)


class FakeStore:
    def __init__(self, dep: Deployment | None) -> None:
        self.dep = dep
        self.reads = 0

    async def get(self, deployment_id: str) -> Deployment | None:
        self.reads += 1
        await asyncio.sleep(0.01)
        return self.dep if self.dep and self.dep.deployment_id == deployment_id else None


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


async def test_cache_serves_within_ttl_and_refreshes_after() -> None:
    store, clock = FakeStore(_dep()), Clock()
    live = LiveDeployments(store, ttl_s=2.0, card=FakeCard(), clock=clock)  # type: ignore[arg-type]
    got = await live.live("dep-1", now=T0 + timedelta(minutes=1))
    assert got is not None and got.watchlist_ids == ("wl-a",) and got.threshold == 0.6
    clock.t = 1.9
    await live.live("dep-1", now=T0)
    assert store.reads == 1
    store.dep = _dep(DeploymentStatus.STOPPED)
    clock.t = 2.1
    assert await live.live("dep-1", now=T0 + timedelta(minutes=1)) is None  # the stop is seen after the TTL
    assert store.reads == 2


async def test_window_end_applies_exactly_despite_cache() -> None:
    live = LiveDeployments(FakeStore(_dep(threshold=0.5)), card=FakeCard())  # type: ignore[arg-type]
    inside = await live.live("dep-1", now=T0 + timedelta(minutes=59))
    assert inside is not None and inside.threshold == 0.5
    assert await live.live("dep-1", now=T0 + timedelta(hours=1)) is None


async def test_concurrent_lookups_share_one_read_and_misses_are_cached() -> None:
    store = FakeStore(_dep())
    live = LiveDeployments(store, card=FakeCard())  # type: ignore[arg-type]
    results = await asyncio.gather(*(live.get("dep-1") for _ in range(20)))
    assert all(r is not None for r in results) and store.reads == 1
    assert await live.get("dep-other") is None and await live.get("dep-other") is None
    assert store.reads == 2
    assert await live.get("not a valid id!") is None  # never exists; no error into the embedder


async def test_model_mismatch_refuses_crops() -> None:
    live = LiveDeployments(FakeStore(_dep()), card=COSINE)  # type: ignore[arg-type]
    assert await live.live("dep-1", now=T0 + timedelta(minutes=1)) is None


async def test_live_needs_a_card() -> None:
    live = LiveDeployments(FakeStore(_dep()))  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="model card"):
        await live.live("dep-1", now=T0 + timedelta(minutes=1))
