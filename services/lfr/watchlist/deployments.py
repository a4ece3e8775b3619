"""Deployments: where, why, when and against which watchlists live recognition may run, and who said so.

Design rules this module enforces (design: privacy and governance 2, 4, 5, 6):

* a deployment is ``draft`` until the named authorising officer authorises it; only an ``authorised``
  deployment inside its time window can be started, and only a ``running`` one inside its window is live
  (the embedder refuses crops of anything else, unread);
* the match threshold is in the embedder card's native units; anything looser than the card's
  ``threshold_floor`` needs a recorded reason, and any change after authorisation needs one too;
* every create, authorise, start, stop, purge and threshold change is written to the hash-chained audit
  log; a change whose audit record cannot be written is rolled back, so there is no unaudited change;
* "stop and purge" deletes the deployment's alert data at once through a hook the alerting service
  provides (``purge_alerts(deployment_id) -> int``).

State lives in Redis (one JSON document per deployment plus an index set) so every API replica and every
embedder sees the same state; a short per-deployment Redis lock serialises read-modify-write-audit.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal, Protocol

import redis.asyncio as aioredis
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from lfr.core.audit import AuditLog
from lfr.core.config import Settings
from lfr.core.ids import new_id
from lfr.core.redis_client import key as rkey
from lfr.core.redis_client import text
from lfr.watchlist.types import validate_id

log = logging.getLogger(__name__)

PurgeAlerts = Callable[[str], int | Awaitable[int]]


class ThresholdCard(Protocol):
    """What governance needs from a model card (lfr.vision.cards.ModelCard satisfies it)."""

    @property
    def name(self) -> str: ...

    @property
    def metric(self) -> str | None: ...

    @property
    def threshold(self) -> float | None: ...

    @property
    def threshold_floor(self) -> float | None: ...

    def is_looser(self, threshold: float, than: float) -> bool: ...

    def to_score(self, raw: float) -> float: ...


class DeploymentError(ValueError):
    """A deployment request breaks a rule; the message says which and what to do."""


class DeploymentNotFound(LookupError):
    pass


class TransitionError(DeploymentError):
    """The requested change does not fit the deployment's current state or time window (HTTP 409)."""


class GovernanceError(DeploymentError):
    """Authorisation or threshold rules refuse the change (HTTP 422)."""


class ThresholdError(GovernanceError):
    pass


class AuditUnavailable(RuntimeError):
    """The change was rolled back because its audit record could not be written."""


class DeploymentStatus(StrEnum):
    DRAFT = "draft"
    AUTHORISED = "authorised"
    RUNNING = "running"
    STOPPED = "stopped"
    REFUSED = "refused"


def _utc(v: datetime) -> datetime:
    return v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)


class DeploymentSpec(BaseModel):
    """What a watchlist admin supplies when creating a deployment."""

    name: str = Field(min_length=1, max_length=200)
    location: str = Field(min_length=1, max_length=500)
    purpose: str = Field(min_length=1, max_length=2000)
    starts_at: datetime
    ends_at: datetime
    authorising_officer: str = Field(min_length=1, max_length=200)
    watchlist_ids: list[str] = Field(min_length=1, max_length=100)
    threshold: float | None = Field(
        None, description="native units of the embedder metric; None = card default"
    )
    threshold_reason: str = Field("", max_length=2000)
    embedder_model: str | None = Field(None, description="card name; default: settings.models.embedder")

    @field_validator("starts_at", "ends_at")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        return _utc(v)

    @field_validator("watchlist_ids")
    @classmethod
    def _ids(cls, v: list[str]) -> list[str]:
        return list(dict.fromkeys(validate_id(w, "watchlist_id") for w in v))

    @field_validator("name", "location", "purpose", "authorising_officer")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be blank")
        return v.strip()

    @model_validator(mode="after")
    def _window(self) -> DeploymentSpec:
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self


class Deployment(DeploymentSpec):
    deployment_id: str
    status: DeploymentStatus = DeploymentStatus.DRAFT
    threshold_source: Literal["card", "explicit", "size_rule"] = Field(
        "card",
        description="who chose the threshold: the card default, a person (with threshold_reason when "
        "looser than the floor), or the watchlist-size rule (governance.target_fpir)",
    )
    embedder_model: str  # always resolved once created
    created_by: str
    created_at: datetime
    updated_at: datetime
    authorised_by: str | None = None
    authorised_at: datetime | None = None
    started_by: str | None = None
    started_at: datetime | None = None
    stopped_by: str | None = None
    stopped_at: datetime | None = None
    purged_at: datetime | None = None
    purged_alerts: int | None = None
    refused_by: str | None = None
    refused_at: datetime | None = None
    refusal_reason: str = ""
    published: bool = Field(False, description="its figures appear on the public transparency page once over")
    published_by: str | None = None
    published_at: datetime | None = None

    @field_validator("deployment_id")
    @classmethod
    def _did(cls, v: str) -> str:
        return validate_id(v, "deployment_id")


# ---- pure rules (unit-tested without Redis) ---------------------------------------------------------------


def _now(now: datetime | float | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if isinstance(now, datetime):
        return _utc(now)
    return datetime.fromtimestamp(float(now), tz=UTC)


def check_threshold(card: ThresholdCard, threshold: float | None, reason: str) -> None:
    """Refuse nonsensical thresholds, and looser-than-floor ones without a recorded reason."""
    if threshold is None:
        return
    if card.threshold is None or card.threshold_floor is None or card.metric is None:
        raise ThresholdError(f"model card {card.name} has no calibrated threshold: it cannot be deployed")
    if not math.isfinite(threshold):
        raise ThresholdError("threshold must be a finite number")
    if card.metric == "L2" and threshold <= 0:
        raise ThresholdError(f"threshold {threshold} is not a Euclidean distance: it must be above 0")
    if card.metric == "COSINE" and not -1.0 <= threshold <= 1.0:
        raise ThresholdError(f"threshold {threshold} is not a cosine similarity: it must lie in [-1, 1]")
    if card.is_looser(threshold, card.threshold_floor) and not reason.strip():
        direction = "above" if card.metric == "L2" else "below"
        raise ThresholdError(
            f"threshold {threshold:g} is looser than model {card.name}'s floor {card.threshold_floor:g} "
            f"({direction} it for {card.metric}; the calibrated default is {card.threshold:g}): "
            "it will raise more false alerts, so a reason must be recorded (threshold_reason)"
        )


def effective_threshold(dep: Deployment, card: ThresholdCard) -> float:
    """The threshold the embedder applies, in the card's native units."""
    if dep.embedder_model != card.name:
        raise GovernanceError(
            f"deployment {dep.deployment_id} was set up for model {dep.embedder_model}, not {card.name}: "
            "thresholds are not comparable across models"
        )
    if dep.threshold is not None:
        return float(dep.threshold)
    if card.threshold is None:
        raise ThresholdError(f"model card {card.name} has no calibrated threshold")
    return float(card.threshold)


def is_live(dep: Deployment, now: datetime | float | None = None) -> bool:
    """Running and inside its window: only then may its cameras' faces be analysed."""
    t = _now(now)
    return dep.status == DeploymentStatus.RUNNING and dep.starts_at <= t < dep.ends_at


def authorise_rule(dep: Deployment, officer: str, now: datetime | float | None = None) -> Deployment:
    t = _now(now)
    who = officer.strip()
    if dep.status != DeploymentStatus.DRAFT:
        raise TransitionError(
            f"deployment {dep.deployment_id} is {dep.status}: only a draft can be authorised"
        )
    if not who:
        raise GovernanceError("the authorising officer must be named")
    if who.casefold() != dep.authorising_officer.casefold():
        raise GovernanceError(
            f"deployment {dep.deployment_id} names {dep.authorising_officer!r} as authorising officer; "
            f"{who!r} cannot authorise it"
        )
    if who.casefold() == dep.created_by.casefold():
        raise GovernanceError("the authorising officer cannot be the person who created the deployment")
    if t >= dep.ends_at:
        raise TransitionError(f"deployment {dep.deployment_id} ended at {dep.ends_at.isoformat()}")
    return dep.model_copy(
        update={
            "status": DeploymentStatus.AUTHORISED,
            "authorised_by": who,
            "authorised_at": t,
            "updated_at": t,
        }
    )


def refuse_rule(
    dep: Deployment, officer: str, reason: str, now: datetime | float | None = None
) -> Deployment:
    """Only the named officer may refuse a draft, and only with a reason; a refused deployment never runs."""
    t = _now(now)
    who = officer.strip()
    if dep.status != DeploymentStatus.DRAFT:
        raise TransitionError(f"deployment {dep.deployment_id} is {dep.status}: only a draft can be refused")
    if who.casefold() != dep.authorising_officer.casefold():
        raise GovernanceError(
            f"deployment {dep.deployment_id} names {dep.authorising_officer!r} as authorising officer; "
            f"{who!r} cannot refuse it"
        )
    if not reason.strip():
        raise GovernanceError("a refusal needs a recorded reason")
    return dep.model_copy(
        update={
            "status": DeploymentStatus.REFUSED,
            "refused_by": who,
            "refused_at": t,
            "refusal_reason": reason.strip(),
            "updated_at": t,
        }
    )


def publish_rule(
    dep: Deployment, officer: str, published: bool, now: datetime | float | None = None
) -> Deployment:
    """The authorising officer switches the public transparency record on or off (never for a draft or a
    refused deployment: nothing ran)."""
    t = _now(now)
    if dep.status in (DeploymentStatus.DRAFT, DeploymentStatus.REFUSED):
        raise TransitionError(f"deployment {dep.deployment_id} is {dep.status}: it has nothing to publish")
    if officer.strip().casefold() != (dep.authorised_by or dep.authorising_officer).casefold():
        raise GovernanceError(
            f"only {dep.authorised_by or dep.authorising_officer!r}, who authorised deployment "
            f"{dep.deployment_id}, can publish its transparency record"
        )
    return dep.model_copy(
        update={"published": published, "published_by": officer.strip(), "published_at": t, "updated_at": t}
    )


def start_rule(dep: Deployment, actor: str, now: datetime | float | None = None) -> Deployment:
    t = _now(now)
    if dep.status == DeploymentStatus.DRAFT:
        raise TransitionError(
            f"deployment {dep.deployment_id} is not authorised yet: "
            f"{dep.authorising_officer} must authorise it first"
        )
    if dep.status != DeploymentStatus.AUTHORISED:
        raise TransitionError(
            f"deployment {dep.deployment_id} is {dep.status}: only an authorised one can start"
        )
    if t < dep.starts_at:
        raise TransitionError(
            f"deployment {dep.deployment_id} is authorised from {dep.starts_at.isoformat()}; "
            f"it is now {t.isoformat(timespec='seconds')}"
        )
    if t >= dep.ends_at:
        raise TransitionError(f"deployment {dep.deployment_id}'s window ended at {dep.ends_at.isoformat()}")
    return dep.model_copy(
        update={"status": DeploymentStatus.RUNNING, "started_by": actor, "started_at": t, "updated_at": t}
    )


def stop_rule(dep: Deployment, actor: str, purge: bool, now: datetime | float | None = None) -> Deployment:
    """Any deployment can be stopped; a stopped one can still be purged later, but not stopped again."""
    t = _now(now)
    if dep.status == DeploymentStatus.REFUSED:
        raise TransitionError(f"deployment {dep.deployment_id} was refused: it never ran")
    if dep.status == DeploymentStatus.STOPPED:
        if not purge:
            raise TransitionError(f"deployment {dep.deployment_id} is already stopped")
        return dep.model_copy(update={"updated_at": t})
    return dep.model_copy(
        update={"status": DeploymentStatus.STOPPED, "stopped_by": actor, "stopped_at": t, "updated_at": t}
    )


def threshold_rule(
    dep: Deployment,
    card: ThresholdCard,
    threshold: float | None,
    reason: str,
    now: datetime | float | None = None,
) -> Deployment:
    if dep.status in (DeploymentStatus.STOPPED, DeploymentStatus.REFUSED):
        raise TransitionError(
            f"deployment {dep.deployment_id} is {dep.status}: its threshold can no longer change"
        )
    if dep.status != DeploymentStatus.DRAFT and not reason.strip():
        raise ThresholdError(
            f"deployment {dep.deployment_id} is {dep.status}: changing the authorised threshold "
            "needs a recorded reason"
        )
    if dep.embedder_model != card.name:
        raise GovernanceError(
            f"deployment {dep.deployment_id} uses model {dep.embedder_model}, not {card.name}"
        )
    check_threshold(card, threshold, reason)
    return dep.model_copy(
        update={"threshold": threshold, "threshold_reason": reason.strip(), "updated_at": _now(now)}
    )


# ---- Redis store ----------------------------------------------------------------------------------------


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
        t = _now(now)
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
        self, deployment_id: str, officer: str, actor: str, now: datetime | float | None = None
    ) -> Deployment:
        _, after = await self._change(
            deployment_id,
            actor,
            "deployment.authorise",
            "",
            lambda d: authorise_rule(d, officer, now),
            lambda b, a: {
                "officer": a.authorised_by or "",
                "watchlists": ",".join(a.watchlist_ids),
                "threshold": "default" if a.threshold is None else f"{a.threshold:g}",
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
        t = _now(now)
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


# ---- the embedder's cached view -------------------------------------------------------------------------


@dataclass(frozen=True)
class LiveDeployment:
    """What the embedder needs per crop (matches lfr.embedder.handler.DeploymentLookup's result)."""

    deployment_id: str
    watchlist_ids: tuple[str, ...]
    threshold: float
    embedder_model: str


class LiveDeployments:
    """A per-process cache of deployments with a short TTL, so the embedder can look one up per crop.

    A stop, or a threshold change, reaches every embedder within ``ttl_s``; the end of the time window is
    applied exactly, because liveness is evaluated on every call against the cached record. Misses are
    cached too (a flood of crops for an unknown deployment costs one Redis read per TTL), and concurrent
    lookups of one id share a single Redis read.
    """

    def __init__(
        self,
        store: DeploymentStore,
        ttl_s: float = 2.0,
        card: ThresholdCard | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self.card = card
        self.clock = clock
        self._cache: dict[str, tuple[float, Deployment | None]] = {}
        self._inflight: dict[str, asyncio.Future[Deployment | None]] = {}
        self._warned: set[str] = set()

    async def get(self, deployment_id: str) -> Deployment | None:
        hit = self._cache.get(deployment_id)
        t = self.clock()
        if hit is not None and t - hit[0] < self.ttl_s:
            return hit[1]
        pending = self._inflight.get(deployment_id)
        if pending is not None:
            return await asyncio.shield(pending)
        fut: asyncio.Future[Deployment | None] = asyncio.get_running_loop().create_future()
        self._inflight[deployment_id] = fut
        try:
            try:
                dep = await self.store.get(deployment_id)
            except ValueError:  # an id that is not a valid deployment id can never exist
                dep = None
            self._cache[deployment_id] = (self.clock(), dep)
            fut.set_result(dep)
            return dep
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # mark retrieved: waiters re-raise it, nobody else needs to
            raise
        finally:
            self._inflight.pop(deployment_id, None)

    async def live(self, deployment_id: str, now: datetime | float | None = None) -> LiveDeployment | None:
        """The deployment's search scope and threshold if it is live for this embedder's model, else None."""
        dep = await self.get(deployment_id)
        if dep is None or not is_live(dep, now):
            return None
        if self.card is None:
            raise RuntimeError("LiveDeployments.live needs the embedder's model card")
        if dep.embedder_model != self.card.name:
            if dep.deployment_id not in self._warned:
                self._warned.add(dep.deployment_id)
                log.warning(
                    "deployment %s is set up for model %s but this embedder runs %s: crops refused",
                    dep.deployment_id,
                    dep.embedder_model,
                    self.card.name,
                )
            return None
        return LiveDeployment(
            dep.deployment_id,
            tuple(dep.watchlist_ids),
            effective_threshold(dep, self.card),
            dep.embedder_model,
        )
