"""The public transparency record: what each finished, published deployment did, with no login.

Forces publish their live facial recognition deployments (where, when, how large the watchlist was, how
many faces were analysed, how many alerts, how many were confirmed or false). A deployment appears here
only once it is over and only after its authorising officer switched publication on (audited). Nothing
personal is served: no names of people or officers, no subject or alert ids, no images; the arrests figure
is the force's to publish and is left empty.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from lfr.alerting.report import build_report
from lfr.api.context import Ctx
from lfr.core import stats
from lfr.watchlist.deployments import Deployment, DeploymentStatus

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1/public", tags=["public"])


class PublicRecord(BaseModel):
    deployment_id: str
    place: str
    starts_at: datetime
    ends_at: datetime
    ran_from: datetime | None
    ran_until: datetime | None
    watchlist_size: int | None = Field(
        description="watchlist images compared with each face: at authorisation where the record kept it, "
        "otherwise now"
    )
    threshold: float | None = Field(None, description="the match threshold authorised")
    expected_false_alerts_per_1000_people: float | None = Field(
        None, description="false alerts expected per 1,000 people passing, as authorised"
    )
    faces_analysed: int
    alerts: int
    confirmed: int = Field(description="alerts an officer confirmed as the person on the watchlist")
    false_alerts: int = Field(description="alerts an officer rejected: not the person")
    undecided: int
    arrests: int | None = Field(None, description="published by the force, not recorded by this system")


def finished(dep: Deployment, now: datetime) -> bool:
    ran = dep.status in (DeploymentStatus.AUTHORISED, DeploymentStatus.RUNNING, DeploymentStatus.STOPPED)
    return ran and (dep.status == DeploymentStatus.STOPPED or dep.ends_at <= now)


async def _size(ctx: Ctx, dep: Deployment) -> int | None:
    try:
        store = ctx.watchlist_stores.store_for(dep.embedder_model)
        return await asyncio.to_thread(store.count, list(dep.watchlist_ids), None)
    except Exception as exc:  # the record is still worth publishing without the size
        log.warning("watchlist size unavailable for %s: %s", dep.deployment_id, type(exc).__name__)
        return None


@router.get(
    "/deployments",
    response_model=list[PublicRecord],
    summary="Finished deployments whose authorising officer published them; no login, no personal data",
)
async def public_deployments(ctx: Ctx, response: Response) -> list[PublicRecord]:
    now = datetime.now(UTC)
    out = []
    for dep in await ctx.deployments.store.list():
        if not (dep.published and finished(dep, now)):
            continue
        r = build_report(dep.deployment_id, await stats.totals(ctx.redis, ctx.settings, dep.deployment_id))
        rate = dep.rate_at_authorisation
        out.append(
            PublicRecord(
                deployment_id=dep.deployment_id,
                place=dep.location,
                starts_at=dep.starts_at,
                ends_at=dep.ends_at,
                ran_from=dep.started_at,
                ran_until=dep.stopped_at,
                watchlist_size=rate.watchlist_size if rate else await _size(ctx, dep),
                threshold=rate.threshold if rate else None,
                expected_false_alerts_per_1000_people=rate.false_alerts_per_1000 if rate else None,
                faces_analysed=r.faces_analysed,
                alerts=r.alerts,
                confirmed=r.confirmed,
                false_alerts=r.rejected,
                undecided=r.unable,
            )
        )
    response.headers["Cache-Control"] = "public, max-age=60"
    return sorted(out, key=lambda p: p.starts_at, reverse=True)
