"""Request and response models of the watchlist, deployment and audit API (and the CLI's --json output).

Kept apart from the route handlers so the OpenAPI contract is one readable file, and so the CLI prints
exactly the documents the API returns. Subject display names appear only in subject documents, never in
audit or deployment documents.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from lfr.core.timeutil import iso, ms_from_ts
from lfr.v1.audit_pb2 import AuditEvent
from lfr.watchlist.deployments import Deployment
from lfr.watchlist.expected_rate import ExpectedRate
from lfr.watchlist.store import SubjectRecord
from lfr.watchlist.types import Category, iso_s


class ErrorOut(BaseModel):
    detail: str
    code: str | None = Field(None, description="machine-readable reason, e.g. several_faces")


class SubjectOut(BaseModel):
    subject_id: str
    watchlist_id: str
    category: Category
    display_name: str
    source: str
    image_date: str
    expires_at: int = Field(description="epoch seconds; 0 = does not expire")
    expires_at_iso: str
    enrolled_at: int
    enrolled_at_iso: str
    images: int
    image_ids: list[str]
    thumbnail: str = Field("", description="base64 JPEG of the aligned face (data:image/jpeg;base64,...)")

    @classmethod
    def of(cls, rec: SubjectRecord) -> SubjectOut:
        return cls(
            subject_id=rec.subject_id,
            watchlist_id=rec.watchlist_id,
            category=rec.category,
            display_name=rec.display_name,
            source=rec.source,
            image_date=rec.image_date,
            expires_at=rec.expires_at,
            expires_at_iso=iso_s(rec.expires_at),
            enrolled_at=rec.enrolled_at,
            enrolled_at_iso=iso_s(rec.enrolled_at),
            images=rec.images,
            image_ids=rec.image_ids,
            thumbnail=rec.thumbnail,
        )


class SubjectList(BaseModel):
    watchlist_id: str
    count: int
    subjects: list[SubjectOut]


class WatchlistSummary(BaseModel):
    watchlist_id: str
    subjects: int


class SubjectUpdate(BaseModel):
    """Fields to change; omitted fields keep their value. ``reason`` goes to the audit log."""

    category: Category | None = None
    display_name: str | None = Field(None, max_length=256)
    source: str | None = Field(None, max_length=256)
    image_date: str | None = None
    expires_at: str | int | None = Field(None, description="ISO date/datetime, epoch seconds, 90d; 0 = never")
    reason: str = Field("", max_length=2000)


class DeleteOut(BaseModel):
    watchlist_id: str
    subject_id: str
    images_deleted: int


class SweepOut(BaseModel):
    rows_deleted: int
    at: int


class RejectionOut(BaseModel):
    ref: str
    subject_id: str
    code: str
    reason: str


class ImportOut(BaseModel):
    total: int
    accepted: int
    subjects: int
    rejected: int
    rejected_by_reason: dict[str, int]
    rejections: list[RejectionOut]


class ExpectedRateOut(BaseModel):
    watchlist_size: int = Field(description="watchlist images each face is compared with")
    threshold: float
    fmr: float | None = Field(description="per-comparison false match rate used; None = unknown")
    basis: str
    false_alerts_per_1000: float | None = Field(
        description="expected false alerts per 1,000 people passing the cameras; None = unknown"
    )
    tpir: float | None = Field(None, description="expected share of watchlist people found, from the card")
    tpir_basis: str = ""
    searches_per_person: int = Field(
        1, description="searches of one person passing at most (ingest.best_shot_max_per_track)"
    )
    false_alerts_per_1000_searches: float | None = Field(
        None, description="expected false alerts per 1,000 searches (one face each)"
    )
    person_basis: str = Field("", description="how the rate per person was bounded from the rate per search")
    tpir_person: float | None = Field(
        None, description="expected share of watchlist people found when seen in tpir_person_views views"
    )
    tpir_person_views: int = 0
    tpir_person_basis: str = ""
    summary: str

    @classmethod
    def of(cls, rate: ExpectedRate) -> ExpectedRateOut:
        return cls(**rate.as_dict())


class AuthoriseIn(BaseModel):
    officer: str = Field(
        min_length=1, max_length=200, description="must be the officer named on the deployment"
    )


class ThresholdIn(BaseModel):
    threshold: float | None = Field(description="native units of the model's metric; null = card default")
    reason: str = Field("", max_length=2000)


class StopIn(BaseModel):
    reason: str = Field("", max_length=2000)


class DeploymentOut(Deployment):
    live: bool
    metric: str | None = Field(None, description="the card's metric; None when the card cannot be loaded")
    card_threshold: float | None = None
    card_threshold_floor: float | None = None
    effective_threshold: float | None = None
    expected_rate: ExpectedRateOut | None = None
    card_problem: str | None = Field(
        None,
        description="why the deployment's model card could not be read (missing or broken on this host); "
        "the record is still listed so one bad deployment never hides the others",
    )


class AuditCheckOut(BaseModel):
    ok: bool
    records: int
    first_bad_seq: int | None = None
    problem: str | None = None
    scope: str = Field(description="which records were verified")
    other_records: int = Field(0, description="records on the topic that belong to other chains")


class AuditEventOut(BaseModel):
    seq: int
    event_id: str
    actor: str
    action: str
    target: str
    reason: str
    time: str
    details: dict[str, str]
    prev_hash: str
    hash: str

    @classmethod
    def of(cls, ev: AuditEvent) -> AuditEventOut:
        return cls(
            seq=ev.seq,
            event_id=ev.event_id,
            actor=ev.actor,
            action=ev.action,
            target=ev.target,
            reason=ev.reason,
            time=iso(ms_from_ts(ev.time)),
            details=dict(ev.details),
            prev_hash=ev.prev_hash,
            hash=ev.hash,
        )


def dump(model: BaseModel | list[Any]) -> Any:
    """JSON-ready data for the CLI's --json output (same shape as the API's)."""
    if isinstance(model, list):
        return [dump(m) for m in model]
    return model.model_dump(mode="json")
