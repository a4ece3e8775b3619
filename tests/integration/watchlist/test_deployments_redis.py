"""DeploymentStore on the real Redis and audit topic: lifecycle, purge hook, rollback, concurrency, the
embedder's cached view, and the expected rate on create."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from lfr.core.audit import AuditLog, read_all
from lfr.core.bus import make_producer
from lfr.core.redis_client import make_redis
from lfr.watchlist.audit_trail import own_chain
from lfr.watchlist.card_stores import CardStores
from lfr.watchlist.deployment_service import DeploymentService
from lfr.watchlist.deployments import (
    AuditUnavailable,
    DeploymentSpec,
    DeploymentStatus,
    DeploymentStore,
    GovernanceError,
    LiveDeployments,
    ThresholdError,
    TransitionError,
)

from .conftest import VectorCard

pytestmark = pytest.mark.integration


def _spec(**over: object) -> DeploymentSpec:
    now = datetime.now(UTC)
    base: dict[str, object] = dict(
        name="High street",
        location="Market Sq",
        purpose="wanted: robbery series",
        starts_at=now - timedelta(minutes=5),
        ends_at=now + timedelta(hours=4),
        authorising_officer="Supt Khan",
        watchlist_ids=["wl-a"],
    )
    base.update(over)
    return DeploymentSpec.model_validate(base)


@pytest.fixture
async def parts(wl_settings):
    redis = make_redis(wl_settings)
    producer = make_producer(wl_settings, "test")
    await producer.start()
    try:
        yield wl_settings, redis, AuditLog(wl_settings, producer, redis)
    finally:
        await producer.stop()
        await redis.aclose()


async def test_lifecycle_is_audited_and_purge_calls_the_hook(parts) -> None:
    settings, redis, audit = parts
    store = DeploymentStore(settings, redis, audit)
    card = VectorCard()
    with pytest.raises(ThresholdError, match="reason"):
        await store.create(_spec(threshold=0.7), "pc.smith", card)
    dep = await store.create(_spec(threshold=0.7, threshold_reason="night-time trial"), "pc.smith", card)
    assert dep.status == DeploymentStatus.DRAFT and dep.embedder_model == card.name
    assert [d.deployment_id for d in await store.list()] == [dep.deployment_id]

    live = LiveDeployments(DeploymentStore(settings, redis), ttl_s=0.0, card=card)
    assert await live.live(dep.deployment_id) is None  # draft: crops refused
    with pytest.raises(TransitionError, match="not authorised"):
        await store.start(dep.deployment_id, "pc.smith")
    with pytest.raises(GovernanceError, match="cannot authorise"):
        await store.authorise(dep.deployment_id, "Insp Brown", "pc.smith")
    await store.authorise(dep.deployment_id, "Supt Khan", "supt.khan")

    # Two operators press start at once: exactly one succeeds.
    outcomes = await asyncio.gather(
        store.start(dep.deployment_id, "pc.a"), store.start(dep.deployment_id, "pc.b"), return_exceptions=True
    )
    assert sum(isinstance(o, TransitionError) for o in outcomes) == 1
    view = await live.live(dep.deployment_id)
    assert view is not None and view.threshold == 0.7 and view.watchlist_ids == ("wl-a",)

    await store.set_threshold(dep.deployment_id, 0.55, "fewer false alerts", "pc.smith", card)
    assert (await live.live(dep.deployment_id)).threshold == 0.55  # type: ignore[union-attr]

    purged: list[str] = []

    async def purge(deployment_id: str) -> int:
        purged.append(deployment_id)
        return 7

    with pytest.raises(GovernanceError, match="no alert purge hook"):
        await store.stop(dep.deployment_id, "pc.smith", purge=True)
    assert (await store.require(dep.deployment_id)).status == DeploymentStatus.RUNNING  # nothing half-done
    stopped = await store.stop(dep.deployment_id, "pc.smith", purge=True, purge_alerts=purge, reason="end")
    assert (
        stopped.status == DeploymentStatus.STOPPED
        and stopped.purged_alerts == 7
        and purged == [dep.deployment_id]
    )
    assert await live.live(dep.deployment_id) is None

    head = await redis.hgetall(f"{settings.redis.key_prefix}audit:head")
    chain = own_chain(await read_all(settings), head[b"hash"].decode())
    assert [e.action for e in chain] == [
        "deployment.create",
        "deployment.authorise",
        "deployment.start",
        "deployment.threshold",
        "deployment.stop",
        "deployment.purge",
    ]
    assert chain[0].reason == "night-time trial" and chain[1].details["officer"] == "Supt Khan"
    assert chain[3].details["from"] == "0.7" and chain[3].details["to"] == "0.55"
    assert chain[5].details["alerts_deleted"] == "7"


async def test_read_only_store_and_audit_failure_rollback(parts) -> None:
    settings, redis, audit = parts
    with pytest.raises(RuntimeError, match="read-only"):
        await DeploymentStore(settings, redis).create(_spec(), "pc", VectorCard())

    class BrokenAudit:
        async def append(self, *a: object, **k: object) -> None:
            raise ConnectionError("broker down")

    store = DeploymentStore(settings, redis, audit)
    dep = await store.create(_spec(), "pc.smith", VectorCard())
    broken = DeploymentStore(settings, redis, BrokenAudit())  # type: ignore[arg-type]
    with pytest.raises(AuditUnavailable, match="rolled back"):
        await broken.authorise(dep.deployment_id, "Supt Khan", "supt.khan")
    assert (await store.require(dep.deployment_id)).status == DeploymentStatus.DRAFT
    with pytest.raises(AuditUnavailable):
        await broken.create(_spec(name="other"), "pc", VectorCard())
    assert [d.deployment_id for d in await store.list()] == [dep.deployment_id]


async def test_service_shows_expected_rate_for_the_watchlist(parts, models_dir) -> None:
    settings, redis, audit = parts
    stores = CardStores(settings)
    svc = DeploymentService(settings, redis, audit, stores)
    try:
        out = await svc.create_deployment(_spec(watchlist_ids=["wl-empty"]), "pc.smith")
        assert out.expected_rate is not None and out.expected_rate.watchlist_size == 0
        assert out.expected_rate.false_alerts_per_1000 in (0.0, None)
        assert out.effective_threshold == stores.card.threshold and not out.live
        got = await svc.get_deployment(out.deployment_id)
        assert got.deployment_id == out.deployment_id and got.expected_rate is not None
    finally:
        await stores.aclose()


async def test_watchlist_size_rule_sets_and_audits_the_threshold(parts, models_dir) -> None:
    """No explicit threshold: creation and authorisation set the one the watchlist's size needs."""
    import numpy as np

    from lfr.watchlist.expected_rate import threshold_for_target
    from lfr.watchlist.store import SubjectMeta

    settings, redis, audit = parts
    stores = CardStores(settings)
    svc = DeploymentService(settings, redis, audit, stores)
    try:
        card = stores.card
        store = stores.store_for(card.name)
        rng = np.random.default_rng(0)

        def enrol(n: int, start: int) -> None:
            for i in range(start, start + n):
                vec = rng.normal(size=card.dim or 128).astype(np.float32)
                store.upsert_subject(
                    SubjectMeta(subject_id=f"s{i}", watchlist_id="wl-size"), vec, f"{i:064x}"
                )

        await asyncio.to_thread(enrol, 40, 0)
        out = await svc.create_deployment(_spec(watchlist_ids=["wl-size"]), "pc.smith")
        target = settings.governance.target_fpir
        searches = settings.ingest.best_shot_max_per_track  # the rate is per person passing
        expected = threshold_for_target(card, target, 40, searches)
        assert out.threshold_source == "size_rule" and out.threshold == pytest.approx(expected.threshold)
        assert out.effective_threshold == pytest.approx(expected.threshold)
        assert not card.is_looser(out.effective_threshold, card.threshold)
        assert out.expected_rate is not None and out.expected_rate.watchlist_size == 40
        assert out.expected_rate.searches_per_person == searches
        assert out.expected_rate.false_alerts_per_1000 is not None
        assert out.expected_rate.false_alerts_per_1000 / 1000 <= target

        # 130 images need a stricter row of the rule than 40 (docs/accuracy.md, "Thresholds that follow
        # the watchlist"); a few rows are enough to show it, and each costs a Milvus write.
        await asyncio.to_thread(enrol, 90, 40)
        authorised = await svc.authorise(out.deployment_id, "Supt Khan", "supt.khan")
        grown = threshold_for_target(card, target, 130, searches)
        assert grown.threshold != expected.threshold, "the test needs sizes on two rows of the rule"
        assert authorised.threshold == pytest.approx(grown.threshold)
        # The record keeps what the officer was shown, for the transparency report; the audit event too.
        shown = authorised.rate_at_authorisation
        assert shown is not None and shown.watchlist_size == 130 and shown.searches_per_person == searches
        assert shown.threshold == pytest.approx(grown.threshold)
        assert shown.false_alerts_per_1000 == pytest.approx(grown.rate.false_alerts_per_1000)
        assert shown.tpir == pytest.approx(grown.rate.tpir) and "per 1,000 people passing" in shown.summary
        assert not card.is_looser(authorised.threshold, out.threshold)  # a bigger list never loosens it

        events = [e for e in await read_all(settings) if e.target == out.deployment_id]
        rules = [
            e for e in events if e.action == "deployment.threshold" and e.details["source"] == "size_rule"
        ]
        assert rules and "watchlist-size rule" in rules[0].reason
        authorise = [e for e in events if e.action == "deployment.authorise"]
        assert authorise and authorise[0].details["watchlist_size"] == "130"
        assert "expected_false_alerts_per_1000_people" in authorise[0].details

        # A person's explicit threshold is never replaced by the rule.
        strict = card.threshold + (0.05 if card.metric == "COSINE" else -0.05)
        own = await svc.create_deployment(_spec(watchlist_ids=["wl-size"], threshold=strict), "pc.smith")
        assert own.threshold_source == "explicit" and own.threshold == pytest.approx(strict)
        again = await svc.authorise(own.deployment_id, "Supt Khan", "supt.khan")
        assert again.threshold == pytest.approx(strict)
    finally:
        await stores.aclose()


async def test_a_deployment_with_a_missing_card_is_listed_with_the_problem(parts, models_dir) -> None:
    """One record naming a card this host cannot read must not hide the other deployments."""
    settings, redis, audit = parts
    stores = CardStores(settings)
    svc = DeploymentService(settings, redis, audit, stores)
    try:
        good = await svc.create_deployment(_spec(watchlist_ids=["wl-listed"]), "pc.smith")
        orphan = await DeploymentStore(settings, redis, audit).create(
            _spec(watchlist_ids=["wl-orphan"]), "pc.smith", VectorCard(name="model-not-built-here")
        )
        listed = {d.deployment_id: d for d in await svc.list_deployments()}
        assert listed[good.deployment_id].card_problem is None
        assert listed[good.deployment_id].effective_threshold == good.effective_threshold
        bad = listed[orphan.deployment_id]
        assert bad.card_problem and "model-not-built-here" in bad.card_problem
        assert bad.metric is None and bad.effective_threshold is None
        with pytest.raises(Exception, match="model-not-built-here"):
            await svc.get_deployment(orphan.deployment_id)
    finally:
        await stores.aclose()
