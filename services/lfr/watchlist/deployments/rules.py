"""The deployment rules as pure functions (unit-tested without Redis): each takes a deployment and returns
the changed one or raises the refusal (design: privacy and governance 2, 4, 5, 6).

* a deployment is ``draft`` until the named authorising officer authorises it (or refuses it, with a
  reason: then it never runs); only an ``authorised`` deployment inside its time window can be started,
  and only a ``running`` one inside its window is live (the embedder refuses crops of anything else,
  unread);
* the match threshold is in the embedder card's native units; anything looser than the card's
  ``threshold_floor`` needs a recorded reason, and any change after authorisation needs one too.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from lfr.watchlist.deployments.model import (
    Deployment,
    DeploymentStatus,
    RateAtAuthorisation,
    ThresholdCard,
    as_utc,
)
from lfr.watchlist.errors import GovernanceError, ThresholdError, TransitionError


def when(now: datetime | float | None) -> datetime:
    """The instant a rule applies at: ``now`` as an aware UTC time (None: the current time)."""
    if now is None:
        return datetime.now(UTC)
    if isinstance(now, datetime):
        return as_utc(now)
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
    t = when(now)
    return dep.status == DeploymentStatus.RUNNING and dep.starts_at <= t < dep.ends_at


def authorise_rule(
    dep: Deployment,
    officer: str,
    now: datetime | float | None = None,
    rate: RateAtAuthorisation | None = None,
) -> Deployment:
    t = when(now)
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
            "rate_at_authorisation": rate,
        }
    )


def refuse_rule(
    dep: Deployment, officer: str, reason: str, now: datetime | float | None = None
) -> Deployment:
    """Only the named officer may refuse a draft, and only with a reason; a refused deployment never runs."""
    t = when(now)
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
    t = when(now)
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
    t = when(now)
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
    t = when(now)
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
        update={"threshold": threshold, "threshold_reason": reason.strip(), "updated_at": when(now)}
    )
