"""What a deployment is: where, why, when and against which watchlists live recognition may run, and who
said so; its states; what governance needs from a model card.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Literal, Protocol

from pydantic import BaseModel, Field, field_validator, model_validator

from lfr.watchlist.types import validate_id

# The alerting package's purge, handed in by a composition root: deletes every alert, probe image and
# dedupe key of the deployment and returns how many alerts it deleted.
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


class DeploymentStatus(StrEnum):
    DRAFT = "draft"
    AUTHORISED = "authorised"
    RUNNING = "running"
    STOPPED = "stopped"
    REFUSED = "refused"


def as_utc(v: datetime) -> datetime:
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
        return as_utc(v)

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


class RateAtAuthorisation(BaseModel):
    """What the authorising officer was shown: the threshold and the rates expected for the watchlists as
    they stood then (lfr.watchlist.expected_rate), kept with the record so the transparency report can set
    the deployment's outcome beside them after the watchlists have changed or expired."""

    threshold: float
    watchlist_size: int
    false_alerts_per_1000: float | None = Field(description="per 1,000 people passing; None = unknown")
    searches_per_person: int = 1
    tpir: float | None = Field(None, description="share of watchlist people found from one face")
    tpir_person: float | None = Field(None, description="found when seen in tpir_person_views views")
    tpir_person_views: int = 0
    summary: str = ""


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
    rate_at_authorisation: RateAtAuthorisation | None = None
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
