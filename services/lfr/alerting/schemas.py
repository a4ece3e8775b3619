"""Request and response models of the alert API and of the console's live stream.

Kept apart from the route handlers so the live-stream publisher (in ``lfr alert``), the API and the tests
share one shape of an alert. Names of watchlist subjects appear only in ``AlertDetailOut`` (fetched by an
authenticated operator), never in the stream events, which pass through Redis pub/sub.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from lfr.alerting.store import AlertState, Outcome, probe_url, reference_url
from lfr.core.timeutil import iso


class AdjudicationInfo(BaseModel):
    adjudication_id: str
    outcome: Outcome
    officer: str
    decided_at_ms: int
    decided_at: str
    note: str = ""


class AlertOut(BaseModel):
    """An alert as the console and API clients see it (times as epoch ms and ISO 8601 UTC)."""

    alert_id: str
    deployment_id: str
    subject_id: str
    watchlist_id: str
    category: str
    camera_ids: list[str]
    first_seen_ms: int
    last_seen_ms: int
    first_seen: str
    last_seen: str
    window_start_ms: int
    hit_count: int
    best_score: float
    threshold: float
    status: Literal["pending", "confirmed", "rejected", "undecided"]
    revision: int
    probe_url: str
    reference_url: str
    adjudication: AdjudicationInfo | None = None

    @classmethod
    def from_state(cls, st: AlertState, include_note: bool = False) -> AlertOut:
        adj = None
        if st.adj_outcome:
            adj = AdjudicationInfo(
                adjudication_id=st.adjudication_id,
                outcome=Outcome(st.adj_outcome),
                officer=st.adj_officer,
                decided_at_ms=st.adj_at,
                decided_at=iso(st.adj_at),
                note=st.adj_note if include_note else "",
            )
        return cls(
            alert_id=st.alert_id,
            deployment_id=st.deployment_id,
            subject_id=st.subject_id,
            watchlist_id=st.watchlist_id,
            category=st.category,
            camera_ids=list(st.cameras),
            first_seen_ms=st.first_seen,
            last_seen_ms=st.last_seen,
            first_seen=iso(st.first_seen),
            last_seen=iso(st.last_seen),
            window_start_ms=st.window_start,
            hit_count=st.hit_count,
            best_score=round(st.best_score, 6),
            threshold=round(st.threshold, 6),
            status=st.status,
            revision=st.revision,
            probe_url=probe_url(st.alert_id),
            reference_url=reference_url(st.alert_id),
            adjudication=adj,
        )


class AlertDetailOut(AlertOut):
    subject_display_name: str | None = Field(
        None, description="from the watchlist; shown to the adjudicating officer, never logged"
    )


class AlertListOut(BaseModel):
    deployment_id: str
    alerts: list[AlertOut]


class StreamEvent(BaseModel):
    """One event of the live stream (SSE ``event: alert``), also the Redis pub/sub payload."""

    change: Literal["created", "updated", "adjudicated"]
    alert: AlertOut


class AdjudicationIn(BaseModel):
    outcome: Outcome = Field(description="match | no_match | unable (unable to decide)")
    note: str = Field("", max_length=2000, description="the officer's reason; kept with the decision")


class AdjudicationOut(BaseModel):
    adjudication_id: str
    alert: AlertOut
    recorded_now: bool = Field(description="false when the same decision had been recorded before")


class DashboardOut(BaseModel):
    deployment_id: str
    faces_analysed: int
    hits: int
    alerts: int
    confirmed: int
    rejected: int
    unable: int
    pending: int
    alerts_per_1000_faces: float | None = Field(description="null until a face has been analysed")
    last_hour_faces_analysed: int
    last_hour_alerts: int
