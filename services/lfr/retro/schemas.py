"""Request and response models of retrospective search (API, CLI ``--json`` and the per-case store).

What a result may hold is decided here, once: ids, scores, boxes and quality figures, never images,
embeddings or names. A result is a *candidate list for human review*; the ``notice`` field says so on
every response, because a retrospective search is investigative and never identifies anyone by itself.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

CASE_REF_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._/-]{1,63}$"
_CASE_RE = re.compile(CASE_REF_PATTERN)
MIN_REASON_CHARS = 5
MAX_TOP_K = 50
NOTICE = (
    "Candidates for human review only. A candidate list is not an identification: an officer must compare "
    "the images and record a decision before any action is taken."
)


class MissingJustificationError(ValueError):
    """A retrospective search was asked for without a case reference or a reason: it is refused."""


def check_case_ref(value: str | None) -> str:
    v = (value or "").strip()
    if not v:
        raise MissingJustificationError(
            "a retrospective search needs a case reference (--case / case_ref): searches are only allowed "
            "for a recorded case"
        )
    if not _CASE_RE.match(v):
        raise MissingJustificationError(
            f"invalid case reference {v!r}: 2-64 characters, letters, digits and . _ / - only, "
            "starting with a letter or digit"
        )
    return v


def check_reason(value: str | None) -> str:
    v = " ".join((value or "").split())
    if len(v) < MIN_REASON_CHARS:
        raise MissingJustificationError(
            f"a retrospective search needs a reason of at least {MIN_REASON_CHARS} characters (--reason / "
            "reason): it is recorded in the audit log with the case reference"
        )
    if len(v) > 1000:
        raise MissingJustificationError("the reason is longer than 1000 characters")
    return v


class SearchTarget(BaseModel):
    """Exactly one of: watchlists (live watchlists by id) or a custody-image gallery by name."""

    model_config = ConfigDict(extra="forbid")

    watchlists: list[str] = Field(default_factory=list)
    gallery: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SearchTarget:
        if bool(self.watchlists) == bool(self.gallery):
            raise ValueError("search either watchlists or one gallery (exactly one of the two)")
        return self

    @property
    def kind(self) -> Literal["watchlists", "gallery"]:
        return "gallery" if self.gallery else "watchlists"


class CandidateOut(BaseModel):
    rank: int = Field(ge=1)
    subject_id: str
    watchlist_id: str | None = None
    gallery: str | None = None
    item_id: str | None = Field(None, description="gallery row id (a custody image reference, not the image)")
    distance: float = Field(description="native metric value: Euclidean distance (L2) or cosine similarity")
    score: float = Field(ge=0, le=1, description="0..1, higher = closer (the model card's to_score)")
    clears_threshold: bool = Field(description="whether the native value passes the model card threshold")


class FaceOut(BaseModel):
    face_index: int
    bbox: tuple[float, float, float, float] = Field(description="x, y, w, h in source pixels")
    frame_index: int | None = None
    time_s: float | None = None
    track_id: int | None = None
    track_frames: int | None = None
    quality_score: float
    quality_passed: bool
    quality_reasons: list[str] = Field(default_factory=list)
    candidates: list[CandidateOut] = Field(default_factory=list)


class SearchResult(BaseModel):
    search_id: str
    case_ref: str
    created_at: str
    actor: str
    source_kind: Literal["image", "video"]
    target: SearchTarget
    top_k: int
    model: str
    metric: str
    threshold: float
    frames_analysed: int = 0
    faces: list[FaceOut]
    retention_days: int | None = None  # the case's retention period when this result was stored
    # Set when this search changed the case's period: the period every earlier result of the case had.
    retention_changed_from_days: int | None = None
    notice: str = NOTICE

    @property
    def candidate_count(self) -> int:
        return sum(len(f.candidates) for f in self.faces)

    @property
    def above_threshold(self) -> int:
        return sum(c.clears_threshold for f in self.faces for c in f.candidates)


class CaseSearches(BaseModel):
    case_ref: str
    searches: list[SearchResult]
    retention_days: int
