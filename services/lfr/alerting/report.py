"""Per-deployment transparency figures: faces analysed, alerts and officers' decisions, per category too.

Forces publish these after each deployment (how many faces were scanned, how many alerts, how many were
true matches). They are read from the counters of lfr.core.stats, which survive a purge of the alert data,
so a report can still be produced after ``lfr deployment stop --purge``. Counts only: no ids, no names.
"""

from __future__ import annotations

import json
from typing import Any

import redis.asyncio as aioredis
from pydantic import BaseModel, Field

from lfr.alerting.schemas import DashboardOut
from lfr.core import stats
from lfr.core.config import Settings
from lfr.core.csvsafe import render_rows
from lfr.core.timeutil import iso, now_ms
from lfr.watchlist.deployments import DeploymentStore, RateAtAuthorisation

CATEGORY_MARK = ":category:"
DECISIONS = {"confirmed": stats.ADJ_MATCH, "rejected": stats.ADJ_NO_MATCH, "unable": stats.ADJ_UNDECIDED}


class CategoryFigures(BaseModel):
    category: str
    alerts: int
    confirmed: int
    rejected: int
    unable: int
    pending: int


class DeploymentReport(BaseModel):
    deployment_id: str
    generated_at: str
    faces_analysed: int
    hits: int
    alerts: int
    confirmed: int
    rejected: int
    unable: int
    pending: int
    alerts_per_1000_faces: float | None
    confirmed_share_of_decided: float | None
    categories: list[CategoryFigures]
    tracks_eligible: int = Field(0, description="people seen with a face >= min size for >= 1 s")
    tracks_unsearched: int = Field(0, description="of those, never searched (no usable face)")
    unsearched_track_rate: float | None = None
    expected: RateAtAuthorisation | None = Field(
        None,
        description="the threshold, watchlist size and rates the authorising officer was shown (false alerts "
        "per 1,000 people passing, TPIR): what to read the outcome against; None before authorisation or for "
        "a deployment authorised before the record kept them",
    )


def _rate(part: int, whole: int, scale: float = 1.0, digits: int = 4) -> float | None:
    return round(part * scale / whole, digits) if whole else None


def build_report(
    deployment_id: str,
    totals: dict[str, int],
    at_ms: int | None = None,
    expected: RateAtAuthorisation | None = None,
) -> DeploymentReport:
    categories: set[str] = set()
    for name in totals:
        if CATEGORY_MARK in name:
            categories.add(name.split(CATEGORY_MARK, 1)[1])

    def figures(suffix: str) -> dict[str, int]:
        out = {"alerts": totals.get(stats.ALERTS + suffix, 0)}
        for label, counter in DECISIONS.items():
            out[label] = totals.get(counter + suffix, 0)
        out["pending"] = max(0, out["alerts"] - out["confirmed"] - out["rejected"] - out["unable"])
        return out

    overall = figures("")
    faces = totals.get(stats.FACES_ANALYSED, 0)
    decided = overall["confirmed"] + overall["rejected"]
    return DeploymentReport(
        deployment_id=deployment_id,
        generated_at=iso(at_ms or now_ms()),
        faces_analysed=faces,
        hits=totals.get(stats.HITS, 0),
        alerts_per_1000_faces=_rate(overall["alerts"], faces, 1000.0, 3),
        confirmed_share_of_decided=_rate(overall["confirmed"], decided),
        categories=[CategoryFigures(category=c, **figures(CATEGORY_MARK + c)) for c in sorted(categories)],
        tracks_eligible=totals.get(stats.TRACKS_ELIGIBLE, 0),
        tracks_unsearched=totals.get(stats.TRACKS_UNSEARCHED, 0),
        unsearched_track_rate=_rate(
            totals.get(stats.TRACKS_UNSEARCHED, 0), totals.get(stats.TRACKS_ELIGIBLE, 0)
        ),
        expected=expected,
        **overall,
    )


async def deployment_report(
    settings: Settings, redis: aioredis.Redis, deployment_id: str
) -> DeploymentReport:
    dep = await DeploymentStore(settings, redis).get(deployment_id)
    return build_report(
        deployment_id,
        await stats.totals(redis, settings, deployment_id),
        expected=None if dep is None else dep.rate_at_authorisation,
    )


def dashboard_from(deployment_id: str, totals: dict[str, int], minutes: list[dict[str, int]]) -> DashboardOut:
    """The console's dashboard: the report's totals plus the last hour from the per-minute counters."""
    r = build_report(deployment_id, totals)
    return DashboardOut(
        deployment_id=deployment_id,
        faces_analysed=r.faces_analysed,
        hits=r.hits,
        alerts=r.alerts,
        confirmed=r.confirmed,
        rejected=r.rejected,
        unable=r.unable,
        pending=r.pending,
        alerts_per_1000_faces=r.alerts_per_1000_faces,
        last_hour_faces_analysed=sum(m.get(stats.FACES_ANALYSED, 0) for m in minutes),
        last_hour_alerts=sum(m.get(stats.ALERTS, 0) for m in minutes),
    )


CSV_COLUMNS = (
    "deployment_id",
    "scope",
    "faces_analysed",
    "hits",
    "alerts",
    "confirmed",
    "rejected",
    "unable",
    "pending",
    "alerts_per_1000_faces",
    "threshold",
    "expected_false_alerts_per_1000_people",
    "expected_tpir",
)


def render_csv(report: DeploymentReport) -> str:
    """One row for the deployment, then one per watchlist category (scope ``category:<name>``).

    Cells pass through :func:`lfr.core.csvsafe.safe_cell`: the report is opened in spreadsheets.
    """
    rows: list[list[object]] = [
        list(CSV_COLUMNS),
        [
            report.deployment_id,
            "deployment",
            report.faces_analysed,
            report.hits,
            report.alerts,
            report.confirmed,
            report.rejected,
            report.unable,
            report.pending,
            "" if report.alerts_per_1000_faces is None else report.alerts_per_1000_faces,
            *_expected_cells(report.expected),
        ],
    ]
    for c in report.categories:
        rows.append(
            [
                report.deployment_id,
                f"category:{c.category}",
                "",
                "",
                c.alerts,
                c.confirmed,
                c.rejected,
                c.unable,
                c.pending,
                "",
                "",
                "",
                "",
            ]
        )
    return render_rows(rows)


def _expected_cells(rate: RateAtAuthorisation | None) -> list[object]:
    """Threshold, expected false alerts per 1,000 people passing and TPIR (one face) at authorisation."""
    if rate is None:
        return ["", "", ""]
    return [
        rate.threshold,
        "" if rate.false_alerts_per_1000 is None else round(rate.false_alerts_per_1000, 4),
        "" if rate.tpir is None else rate.tpir,
    ]


def render_json(report: DeploymentReport) -> str:
    doc: dict[str, Any] = report.model_dump()
    return json.dumps(doc, indent=2)
