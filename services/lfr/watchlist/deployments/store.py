"""Deployments in Redis, every change governed by the rules and audited.

State lives in Redis (one JSON document per deployment plus an index set) so every API replica and every
embedder sees the same state; a short per-deployment Redis lock serialises read-modify-write-audit. Every
create, authorise, refuse, start, stop, purge, publish and threshold change is written to the hash-chained
audit log; a change whose audit record cannot be written is rolled back, so there is no unaudited change.
"Stop and purge" deletes the deployment's alert data at once through the purge the alerting package
provides, handed in by the caller.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

import redis.asyncio as aioredis
from pydantic import ValidationError

from lfr.core.audit import AuditLog
from lfr.core.config import Settings
from lfr.core.ids import new_id
from lfr.core.redis_client import key as rkey
from lfr.core.redis_client import text
from lfr.watchlist.deployments.model import (
    Deployment,
    DeploymentSpec,
    DeploymentStatus,
    PurgeAlerts,
    RateAtAuthorisation,
    ThresholdCard,
)
from lfr.watchlist.deployments.rules import (
    authorise_rule,
    check_threshold,
    publish_rule,
    refuse_rule,
    start_rule,
    stop_rule,
    threshold_rule,
    when,
)
from lfr.watchlist.errors import (
    AuditUnavailable,
    DeploymentError,
    DeploymentNotFound,
    GovernanceError,
)
from lfr.watchlist.types import validate_id

log = logging.getLogger(__name__)


class DeploymentStore:
    """Deployments in Redis. Built without an audit log it is read-only (the embedder's view)."""

    LOCK_MS = 10_000

    def __init__(self, settings: Settings, redis: aioredis.Redis, audit: AuditLog | None = None) -> None:
        self.settings = settings
        self.redis = redis
        self.audit = audit
        self._index = rkey(settings, "deployments")

    def _key(self, deployment_id: str) -> str:
        return rkey(self.settings, "deployment", validate_id(deployment_id, "deployment_id"))

    def _need_audit(self) -> AuditLog:
        if self.audit is None:
            raise RuntimeError("this DeploymentStore is read-only: it was built without an audit log")
        return self.audit

    # ---- reads ----------------------------------------------------------------------------------------

    async def get(self, deployment_id: str) -> Deployment | None:
        raw = await self.redis.get(self._key(deployment_id))
        if raw is None:
            return None
        try:
            return Deployment.model_validate_json(raw)
        except ValidationError as exc:
            log.error("deployment %s record is unreadable: %s", deployment_id, exc.errors()[:1])
            return None

    async def require(self, deployment_id: str) -> Deployment:
        dep = await self.get(deployment_id)
        if dep is None:
            raise DeploymentNotFound(f"no deployment {deployment_id}")
        return dep

    async def list(self) -> list[Deployment]:
        ids = sorted(text(m) for m in await self.redis.smembers(self._index))
        if not ids:
            return []
        raws = await self.redis.mget([self._key(i) for i in ids])
        out = []
        for raw in raws:
            if raw is not None:
                try:
                    out.append(Deployment.model_validate_json(raw))
                except ValidationError:
                    continue
        return sorted(out, key=lambda d: (d.created_at, d.deployment_id))

    # ---- writes ---------------------------------------------------------------------------------------

    async def _locked(self, deployment_id: str) -> bytes:
        token = new_id().encode()
        lock = self._key(deployment_id) + ":lock"
        for _ in range(400):
            if await self.redis.set(lock, token, nx=True, px=self.LOCK_MS):
                return token
            await asyncio.sleep(0.025)
        raise TimeoutError(f"deployment {deployment_id} is locked by another change; try again")

    async def _unlock(self, deployment_id: str, token: bytes) -> None:
        lock = self._key(deployment_id) + ":lock"
        if await self.redis.get(lock) == token:
            await self.redis.delete(lock)

    async def _save(self, dep: Deployment) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(self._key(dep.deployment_id), dep.model_dump_json())
            pipe.sadd(self._index, dep.deployment_id)
            await pipe.execute()

    async def _audited(
        self,
        before: Deployment | None,
        after: Deployment,
        actor: str,
        action: str,
        reason: str,
        details: dict[str, Any],
    ) -> None:
        """Save ``after`` then audit; if the audit write fails, put ``before`` back and raise."""
        audit = self._need_audit()
        await self._save(after)
        try:
            await audit.append(
                actor, action, after.deployment_id, reason, {k: str(v) for k, v in details.items()}
            )
        except Exception as exc:
            if before is None:
                async with self.redis.pipeline(transaction=True) as pipe:
                    pipe.delete(self._key(after.deployment_id))
                    pipe.srem(self._index, after.deployment_id)
                    await pipe.execute()
            else:
                await self._save(before)
            raise AuditUnavailable(
                f"{action} on {after.deployment_id} rolled back: audit log unavailable "
                f"({type(exc).__name__}: {exc})"
            ) from exc

    async def _change(
        self,
        deployment_id: str,
        actor: str,
        action: str,
        reason: str,
        rule: Callable[[Deployment], Deployment],
        details: Callable[[Deployment, Deployment], dict[str, Any]],
    ) -> tuple[Deployment, Deployment]:
        self._need_audit()
        if not actor:
            raise GovernanceError("every deployment change needs an actor")
        token = await self._locked(deployment_id)
        try:
            before = await self.require(deployment_id)
            after = rule(before)
            await self._audited(before, after, actor, action, reason, details(before, after))
            log.info("%s %s by %s: %s -> %s", action, deployment_id, actor, before.status, after.status)
            return before, after
        finally:
            await self._unlock(deployment_id, token)

    async def create(
        self, spec: DeploymentSpec, actor: str, card: ThresholdCard, now: datetime | float | None = None
    ) -> Deployment:
        self._need_audit()
        if not actor:
            raise GovernanceError("every deployment change needs an actor")
        t = when(now)
        model = spec.embedder_model or card.name
        if model != card.name:
            raise GovernanceError(
                f"deployment names model {model} but the threshold card given is {card.name}"
            )
        check_threshold(card, spec.threshold, spec.threshold_reason)
        if spec.ends_at <= t:
            raise DeploymentError(f"the window ends at {spec.ends_at.isoformat()}, which has already passed")
        dep = Deployment(
            **{
                **spec.model_dump(),
                "embedder_model": model,
                "threshold_reason": spec.threshold_reason.strip(),
                "threshold_source": "card" if spec.threshold is None else "explicit",
            },
            deployment_id=f"dep-{new_id()[:12]}",
            created_by=actor,
            created_at=t,
            updated_at=t,
        )
        await self._audited(
            None,
            dep,
            actor,
            "deployment.create",
            dep.threshold_reason,
            {
                "watchlists": ",".join(dep.watchlist_ids),
                "embedder": model,
                "threshold": "default" if dep.threshold is None else f"{dep.threshold:g}",
                "card_threshold": f"{card.threshold:g}",
                "starts_at": dep.starts_at.isoformat(),
                "ends_at": dep.ends_at.isoformat(),
            },
        )
        log.info(
            "deployment.create %s by %s (%d watchlists)", dep.deployment_id, actor, len(dep.watchlist_ids)
        )
        return dep

    async def authorise(
        self,
        deployment_id: str,
        officer: str,
        actor: str,
        now: datetime | float | None = None,
        rate: RateAtAuthorisation | None = None,
    ) -> Deployment:
        """``rate``: what the officer was shown (kept in the record and the audit event)."""
        _, after = await self._change(
            deployment_id,
            actor,
            "deployment.authorise",
            "",
            lambda d: authorise_rule(d, officer, now, rate),
            lambda b, a: {
                "officer": a.authorised_by or "",
                "watchlists": ",".join(a.watchlist_ids),
                "threshold": "default" if a.threshold is None else f"{a.threshold:g}",
                **_rate_details(a.rate_at_authorisation),
            },
        )
        return after

    async def refuse(
        self, deployment_id: str, officer: str, reason: str, now: datetime | float | None = None
    ) -> Deployment:
        _, after = await self._change(
            deployment_id,
            officer,
            "deployment.refuse",
            reason,
            lambda d: refuse_rule(d, officer, reason, now),
            lambda b, a: {"officer": a.refused_by or "", "watchlists": ",".join(a.watchlist_ids)},
        )
        return after

    async def publish(
        self, deployment_id: str, officer: str, published: bool, now: datetime | float | None = None
    ) -> Deployment:
        _, after = await self._change(
            deployment_id,
            officer,
            "deployment.publish" if published else "deployment.unpublish",
            "",
            lambda d: publish_rule(d, officer, published, now),
            lambda b, a: {"published": str(a.published).lower(), "status": str(a.status)},
        )
        return after

    async def start(self, deployment_id: str, actor: str, now: datetime | float | None = None) -> Deployment:
        _, after = await self._change(
            deployment_id,
            actor,
            "deployment.start",
            "",
            lambda d: start_rule(d, actor, now),
            lambda b, a: {"ends_at": a.ends_at.isoformat()},
        )
        return after

    async def stop(
        self,
        deployment_id: str,
        actor: str,
        purge: bool = False,
        purge_alerts: PurgeAlerts | None = None,
        reason: str = "",
        now: datetime | float | None = None,
    ) -> Deployment:
        """Stop (idempotent only with ``purge``); with ``purge`` also delete the deployment's alert data.

        The purge hook is checked before anything changes, so "stop and purge" never half-happens because
        the hook is missing; the stop is audited first, then the purge with the number of alerts deleted.
        """
        if purge and purge_alerts is None:
            raise GovernanceError(
                "cannot purge: no alert purge hook is installed (the alerting service "
                "provides it); stop without purge or install it"
            )
        current = await self.require(deployment_id)
        if current.status == DeploymentStatus.STOPPED and purge:
            after = current  # stopped earlier: purge only, without a second stop record
        else:
            _, after = await self._change(
                deployment_id,
                actor,
                "deployment.stop",
                reason,
                lambda d: stop_rule(d, actor, purge, now),
                lambda b, a: {"from_status": str(b.status), "purge": str(purge).lower()},
            )
        if not purge:
            return after
        assert purge_alerts is not None
        result = purge_alerts(deployment_id)
        count = int(await result) if inspect.isawaitable(result) else int(result)
        t = when(now)
        _, after = await self._change(
            deployment_id,
            actor,
            "deployment.purge",
            reason,
            lambda d: d.model_copy(
                update={"purged_at": t, "purged_alerts": (d.purged_alerts or 0) + count, "updated_at": t}
            ),
            lambda b, a: {"alerts_deleted": count},
        )
        return after

    async def set_threshold(
        self,
        deployment_id: str,
        threshold: float | None,
        reason: str,
        actor: str,
        card: ThresholdCard,
        now: datetime | float | None = None,
        source: Literal["explicit", "size_rule"] = "explicit",
    ) -> Deployment:
        def change(d: Deployment) -> Deployment:
            after = threshold_rule(d, card, threshold, reason, now)
            return after.model_copy(update={"threshold_source": "card" if threshold is None else source})

        _, after = await self._change(
            deployment_id,
            actor,
            "deployment.threshold",
            reason,
            change,
            lambda b, a: {
                "from": "default" if b.threshold is None else f"{b.threshold:g}",
                "to": "default" if a.threshold is None else f"{a.threshold:g}",
                "card_floor": f"{card.threshold_floor:g}",
                "status": str(a.status),
                "source": a.threshold_source,
            },
        )
        return after


def _rate_details(rate: RateAtAuthorisation | None) -> dict[str, str]:
    """The authorised rates as audit details (strings, as every audit detail is)."""
    if rate is None:
        return {}
    out = {"watchlist_size": str(rate.watchlist_size), "searches_per_person": str(rate.searches_per_person)}
    if rate.false_alerts_per_1000 is not None:
        out["expected_false_alerts_per_1000_people"] = f"{rate.false_alerts_per_1000:.3g}"
    if rate.tpir is not None:
        out["expected_tpir"] = f"{rate.tpir:.4g}"
    if rate.tpir_person is not None:
        out["expected_tpir_person"] = f"{rate.tpir_person:.4g}"
    return out
