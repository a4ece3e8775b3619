"""The transparency report of a deployment with its figures over time, for auditors and authorising officers.

Totals come from lfr.alerting.report (counters that survive a purge); the timeline sums the per-minute
counters (kept ``stats.MINUTE_TTL_S``) into at most ``MAX_BINS`` equal bins across the deployment's window,
so the console can plot faces analysed, alerts, decisions and the false-alert rate over time. Counts only:
no ids of people, no images. Downloading the report (CSV or JSON) is audited.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from lfr.alerting.report import DeploymentReport, build_report, render_csv
from lfr.api.auth import Principal, require
from lfr.api.context import Ctx
from lfr.api.errors import ERRORS, domain_errors
from lfr.core import stats
from lfr.core.redis_client import text
from lfr.watchlist.deployments import Deployment

router = APIRouter(prefix="/api/v1/deployments", tags=["reports"])

Reader = Annotated[Principal, Depends(require("auditor", "authorising-officer"))]
MAX_BINS = 48
MAX_MINUTES = stats.MINUTE_TTL_S // 60  # older minutes have expired


class TimeBin(BaseModel):
    start: str
    minutes: int
    faces_analysed: int
    alerts: int
    confirmed: int
    rejected: int
    unable: int


class ReportOut(BaseModel):
    report: DeploymentReport
    window_start: str = Field(description="the timeline's first minute (the deployment window's start)")
    window_end: str
    timeline: list[TimeBin]


def window(dep: Deployment, now: datetime | None = None) -> tuple[datetime, datetime]:
    """From the start of its window until it stopped, ended, or now, whichever is first."""
    t = now or datetime.now(UTC)
    start = min(dep.starts_at, dep.started_at or dep.starts_at)
    end = min(t, dep.stopped_at or dep.ends_at, dep.ends_at)
    return start, max(start, end)


def bins(start_s: int, end_s: int, max_bins: int = MAX_BINS) -> list[tuple[int, int]]:
    """(first minute as epoch seconds, minutes) per bin, covering [start, end) in whole minutes."""
    first = start_s // 60 * 60
    minutes = max(1, min(MAX_MINUTES, math.ceil((end_s - first) / 60)))
    first = max(first, end_s // 60 * 60 - (minutes - 1) * 60)
    width = max(1, math.ceil(minutes / max_bins))
    return [(first + i * 60, min(width, minutes - i)) for i in range(0, minutes, width)]


async def timeline(ctx: Ctx, deployment_id: str, start: datetime, end: datetime) -> list[TimeBin]:
    plan = bins(int(start.timestamp()), int(end.timestamp()))
    pipe = ctx.redis.pipeline(transaction=False)
    for first, n in plan:
        for m in range(n):
            pipe.hgetall(stats.counter_keys(ctx.settings, deployment_id, (first + 60 * m) * 1000)[1])
    rows = iter(await pipe.execute())
    out = []
    for first, n in plan:
        sums: dict[str, int] = {}
        for _ in range(n):
            for k, v in next(rows).items():
                sums[text(k)] = sums.get(text(k), 0) + int(v)
        out.append(
            TimeBin(
                start=datetime.fromtimestamp(first, UTC).isoformat(),
                minutes=n,
                faces_analysed=sums.get(stats.FACES_ANALYSED, 0),
                alerts=sums.get(stats.ALERTS, 0),
                confirmed=sums.get(stats.ADJ_MATCH, 0),
                rejected=sums.get(stats.ADJ_NO_MATCH, 0),
                unable=sums.get(stats.ADJ_UNDECIDED, 0),
            )
        )
    return out


async def full_report(ctx: Ctx, deployment_id: str) -> ReportOut:
    with domain_errors():
        dep = await ctx.deployments.store.require(deployment_id)
    totals = await stats.totals(ctx.redis, ctx.settings, deployment_id)
    start, end = window(dep)
    return ReportOut(
        report=build_report(deployment_id, totals, expected=dep.rate_at_authorisation),
        window_start=start.isoformat(),
        window_end=end.isoformat(),
        timeline=await timeline(ctx, deployment_id, start, end),
    )


@router.get(
    "/{deployment_id}/report",
    response_model=ReportOut,
    responses=ERRORS,
    summary="Transparency figures of a deployment, in total and over time",
)
async def report(deployment_id: str, who: Reader, ctx: Ctx) -> ReportOut:
    return await full_report(ctx, deployment_id)


@router.get(
    "/{deployment_id}/report/export",
    responses={**ERRORS, 200: {"content": {"text/csv": {}, "application/json": {}}}},
    summary="The transparency report as a CSV or JSON file; the download is audited",
)
async def export_report(
    deployment_id: str,
    who: Reader,
    ctx: Ctx,
    format: Annotated[Literal["csv", "json"], Query()] = "csv",
) -> Response:
    out = await full_report(ctx, deployment_id)
    with domain_errors():
        await ctx.audit.append(
            who.name, "report.export", deployment_id, "", {"deployment_id": deployment_id, "format": format}
        )
    headers = {"Content-Disposition": f'attachment; filename="lfr-report-{deployment_id}.{format}"'}
    if format == "json":
        body = json.dumps(out.model_dump(mode="json"), indent=2)
        return Response(body, media_type="application/json", headers=headers)
    return Response(render_csv(out.report), media_type="text/csv; charset=utf-8", headers=headers)
