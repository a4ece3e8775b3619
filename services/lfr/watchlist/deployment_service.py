"""Deployments as the API and the `lfr deployment` command see them: each change through the governed store,
each answer with the model card's thresholds and the false-alert rate to expect.

The state rules live in the deployment store; this service adds what needs the watchlist collections as
well: the expected rate for the watchlists' current size, and the watchlist-size threshold rule.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import redis.asyncio as aioredis

from lfr.core.audit import AuditLog
from lfr.core.config import Settings
from lfr.vision.cards import CardError
from lfr.watchlist.card_stores import CardStores
from lfr.watchlist.deployments import (
    Deployment,
    DeploymentSpec,
    DeploymentStatus,
    DeploymentStore,
    GovernanceError,
    PurgeAlerts,
    RateAtAuthorisation,
    ThresholdCard,
    effective_threshold,
    is_live,
)
from lfr.watchlist.expected_rate import ExpectedRate, expected_rate, threshold_for_target
from lfr.watchlist.schemas import DeploymentOut, ExpectedRateOut
from lfr.watchlist.store import StoreError

if TYPE_CHECKING:
    from lfr.vision.cards import ModelCard

log = logging.getLogger(__name__)


class DeploymentService:
    """Create, authorise or refuse, start, stop (and purge), threshold, publish, read.

    ``purge_alerts`` is the alert purge a composition root hands in (the alerting package provides it);
    without it "stop and purge" is refused before anything changes.
    """

    def __init__(
        self,
        settings: Settings,
        redis: aioredis.Redis,
        audit: AuditLog,
        stores: CardStores,
        purge_alerts: PurgeAlerts | None = None,
    ) -> None:
        self.settings = settings
        self.stores = stores
        self.purge_alerts = purge_alerts
        self.store = DeploymentStore(settings, redis, audit)

    async def expected_rate(self, dep: Deployment | DeploymentSpec, card: ThresholdCard) -> ExpectedRate:
        """The false-alert rate for the deployment's watchlists as they stand now."""
        store = self.stores.store_for(card.name)
        size = await asyncio.to_thread(store.count, list(dep.watchlist_ids), None)
        return expected_rate(
            self.stores.card_for(card.name),
            dep.threshold,
            size,
            self.searches_per_person,
            self.settings.embedder.track_fusion,
        )

    @property
    def searches_per_person(self) -> int:
        """How many times a live camera searches one person at most: what a false-alert rate per person
        passing is taken over (lfr.watchlist.expected_rate)."""
        return self.settings.ingest.best_shot_max_per_track

    async def describe(self, dep: Deployment, with_rate: bool = True) -> DeploymentOut:
        card = self.stores.card_for(dep.embedder_model)
        rate = None
        if with_rate:
            try:
                rate = ExpectedRateOut.of(await self.expected_rate(dep, card))
            except StoreError as exc:
                log.warning("expected rate unavailable for %s: %s", dep.deployment_id, exc)
        assert card.metric is not None and card.threshold is not None and card.threshold_floor is not None
        return DeploymentOut(
            **dep.model_dump(),
            live=is_live(dep),
            metric=card.metric,
            card_threshold=card.threshold,
            card_threshold_floor=card.threshold_floor,
            effective_threshold=effective_threshold(dep, card),
            expected_rate=rate,
        )

    async def create_deployment(self, spec: DeploymentSpec, actor: str) -> DeploymentOut:
        card = self.stores.card_for(spec.embedder_model)
        dep = await self.store.create(spec, actor, card)
        dep = await self._size_rule(dep, card, actor)
        return await self.describe(dep)

    async def _size_rule(self, dep: Deployment, card: ModelCard, actor: str) -> Deployment:
        """Give a deployment without an explicit threshold the one its watchlist size needs (audited).

        Applied at creation and again at authorisation (the watchlists may have grown in between); a
        threshold set by a person (threshold_source "explicit") is never replaced.
        """
        g = self.settings.governance
        if not g.size_rule or dep.threshold_source == "explicit" or dep.status != DeploymentStatus.DRAFT:
            return dep
        size = await asyncio.to_thread(self.stores.store_for(card.name).count, list(dep.watchlist_ids), None)
        choice = threshold_for_target(
            card, g.target_fpir, size, self.searches_per_person, self.settings.embedder.track_fusion
        )
        if dep.threshold == choice.threshold and dep.threshold_source == "size_rule":
            return dep
        return await self.store.set_threshold(
            dep.deployment_id, choice.threshold, choice.reason, actor, card, source="size_rule"
        )

    async def get_deployment(self, deployment_id: str) -> DeploymentOut:
        return await self.describe(await self.store.require(deployment_id))

    async def list_deployments(self) -> list[DeploymentOut]:
        """Every deployment; one whose model card this host cannot read is listed with ``card_problem``.

        Why not fail the whole list: a record naming a card that was removed or never built here (an old
        model, a test fixture) would otherwise hide every other deployment from the console and the CLI.
        """
        return [await self._describe_listed(d) for d in await self.store.list()]

    async def _describe_listed(self, dep: Deployment) -> DeploymentOut:
        try:
            return await self.describe(dep, with_rate=False)
        except (CardError, GovernanceError) as exc:
            log.warning("deployment %s listed without its card: %s", dep.deployment_id, exc)
            return DeploymentOut(**dep.model_dump(), live=is_live(dep), card_problem=str(exc))

    async def authorise(self, deployment_id: str, officer: str, actor: str) -> DeploymentOut:
        dep = await self.store.require(deployment_id)
        card = self.stores.card_for(dep.embedder_model)
        dep = await self._size_rule(dep, card, actor)
        shown = await self._rate_shown(dep, card)
        return await self.describe(await self.store.authorise(deployment_id, officer, actor, rate=shown))

    async def _rate_shown(self, dep: Deployment, card: ModelCard) -> RateAtAuthorisation | None:
        """The rates the officer authorises against, to keep with the record; None when the watchlist store
        cannot say the size now (authorisation does not wait on it: the console showed "unknown")."""
        try:
            rate = await self.expected_rate(dep, card)
        except StoreError as exc:
            log.warning("expected rate unavailable at authorisation of %s: %s", dep.deployment_id, exc)
            return None
        return RateAtAuthorisation.model_validate(rate.as_dict())  # the fields it keeps, by name

    async def refuse(self, deployment_id: str, officer: str, reason: str) -> DeploymentOut:
        return await self.describe(await self.store.refuse(deployment_id, officer, reason))

    async def publish(self, deployment_id: str, officer: str, published: bool) -> DeploymentOut:
        dep = await self.store.publish(deployment_id, officer, published)
        return await self.describe(dep, with_rate=False)

    async def start(self, deployment_id: str, actor: str) -> DeploymentOut:
        return await self.describe(await self.store.start(deployment_id, actor), with_rate=False)

    async def stop(
        self, deployment_id: str, actor: str, purge: bool = False, reason: str = ""
    ) -> DeploymentOut:
        dep = await self.store.stop(deployment_id, actor, purge, self.purge_alerts, reason)
        return await self.describe(dep, with_rate=False)

    async def set_threshold(
        self, deployment_id: str, threshold: float | None, reason: str, actor: str
    ) -> DeploymentOut:
        dep = await self.store.require(deployment_id)
        card = self.stores.card_for(dep.embedder_model)
        return await self.describe(
            await self.store.set_threshold(deployment_id, threshold, reason, actor, card)
        )


async def start_deployment_now(
    deployments: DeploymentService,
    name: str,
    purpose: str,
    watchlist_ids: list[str],
    actor: str,
    officer: str,
    hours: float = 4.0,
) -> str:
    """Create a deployment whose window opens now, have ``officer`` authorise it, and start it.

    For the demo and benchmarks, which need a live deployment in one step; each step is still the audited
    governance path (the officer must differ from the creator, as for any deployment).
    """
    now = datetime.now(UTC)
    dep = await deployments.create_deployment(
        DeploymentSpec(
            name=name,
            location=name,
            purpose=purpose,
            starts_at=now - timedelta(minutes=1),
            ends_at=now + timedelta(hours=hours),
            authorising_officer=officer,
            watchlist_ids=watchlist_ids,
        ),
        actor,
    )
    await deployments.authorise(dep.deployment_id, officer, officer)
    await deployments.start(dep.deployment_id, actor)
    return dep.deployment_id
