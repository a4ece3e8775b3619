"""Alert routes: the live stream (SSE), alert reads, probe and reference images, adjudication, dashboard.

Roles: ``operator`` watches the stream, sees images and decides; ``auditor`` may read alerts (without the
subject's name or the officer's note) and dashboards. Images are served decrypted only here, with caching
forbidden, so a probe crop exists in clear only in the operator's browser memory. The adjudication is
recorded once in the alert store and then published (lfr.adjudications.v1, the alert's new revision on
lfr.alerts.v1, webhooks, live streams), audited and counted; each finished step is remembered, so a retried
POST after a failure completes only what is missing.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, status
from fastapi.responses import Response, StreamingResponse
from starlette.background import BackgroundTask

from lfr.alerting.report import dashboard_from
from lfr.alerting.schemas import (
    AdjudicationIn,
    AdjudicationOut,
    AlertDetailOut,
    AlertListOut,
    AlertOut,
    DashboardOut,
)
from lfr.alerting.store import AlertState
from lfr.alerting.stream import CLOSED, RESYNC
from lfr.api.auth import Principal, require
from lfr.api.context import ApiContext, Ctx
from lfr.api.errors import domain_errors
from lfr.core import stats
from lfr.core.crypto import DecryptFailed, probe_aad

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1", tags=["alerts"])

Operator = Annotated[Principal, Depends(require("operator"))]
Reader = Annotated[Principal, Depends(require("operator", "auditor"))]

STREAM_SNAPSHOT = 200
KEEPALIVE_S = 15.0
NO_STORE = {
    "Cache-Control": "no-store, max-age=0",
    "Pragma": "no-cache",
    "X-Content-Type-Options": "nosniff",
}


async def _require_alert(ctx: ApiContext, alert_id: str) -> AlertState:
    state = await ctx.alerts.get(alert_id)
    if state is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such alert (or purged under retention)")
    return state


def _sse(event: str, data: str) -> str:
    return f"event: {event}\ndata: {data}\n\n"


# ---- live stream -------------------------------------------------------------------------------------


@router.get(
    "/deployments/{deployment_id}/alerts/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def alert_stream(deployment_id: str, ctx: Ctx, _: Operator) -> StreamingResponse:
    """Server-sent events: ``snapshot`` (recent alerts, on connect and on resync), then ``alert`` per change.

    Token in the Authorization header, or ``?access_token=`` for browsers' EventSource.
    """
    hub = ctx.alert_hub
    with domain_errors():
        sub = await hub.subscribe(deployment_id)
    store = ctx.alerts

    async def snapshot() -> str:
        alerts = await store.list(deployment_id, limit=STREAM_SNAPSHOT)
        body = AlertListOut(deployment_id=deployment_id, alerts=[AlertOut.from_state(a) for a in alerts])
        return _sse("snapshot", body.model_dump_json())

    async def events() -> AsyncIterator[str]:
        try:
            yield "retry: 2000\n\n"
            yield await snapshot()
            while True:
                item = await sub.next(KEEPALIVE_S)
                if item is None:
                    yield ": keepalive\n\n"
                elif item == CLOSED:
                    return
                elif item == RESYNC:
                    yield await snapshot()
                else:
                    yield _sse("alert", item)
        finally:
            hub.unsubscribe(sub)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        # Also when the client leaves before the body starts (the generator's finally never runs then).
        background=BackgroundTask(hub.unsubscribe, sub),
    )


# ---- reads -------------------------------------------------------------------------------------------


@router.get("/alerts", response_model=AlertListOut)
async def list_alerts(
    ctx: Ctx,
    _: Reader,
    deployment: Annotated[str, Query(min_length=1, max_length=128)],
    status_: Annotated[
        str | None, Query(alias="status", pattern="^(pending|confirmed|rejected|undecided)$")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before_ms: Annotated[int | None, Query(description="page: alerts last seen before this time")] = None,
) -> AlertListOut:
    """Newest first (by last sighting)."""
    alerts = await ctx.alerts.list(deployment, limit=limit, status=status_, before_ms=before_ms)
    return AlertListOut(deployment_id=deployment, alerts=[AlertOut.from_state(a) for a in alerts])


@router.get("/alerts/{alert_id}", response_model=AlertDetailOut)
async def get_alert(alert_id: str, ctx: Ctx, who: Reader) -> AlertDetailOut:
    state = await _require_alert(ctx, alert_id)
    operator = who.has("operator")
    out = AlertDetailOut(**AlertOut.from_state(state, include_note=operator).model_dump())
    if operator:
        subject = await ctx.subject_lookup(state.subject_id, state.watchlist_id)
        if subject:
            out.subject_display_name = str(subject.get("display_name") or "") or None
    return out


@router.get("/alerts/{alert_id}/probe.jpg", response_class=Response)
async def probe_image(alert_id: str, ctx: Ctx, who: Operator) -> Response:
    """The best probe crop of the alert, decrypted for the adjudicating officer; never cached.

    Every view is audited before the image is handed out (who looked at which person's face, and when, is
    what an auditor asks first); a view that cannot be recorded is refused.
    """
    found = await ctx.alerts.probe(alert_id)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no probe image for this alert")
    blob, crop_id, deployment_id = found
    keys = await ctx.probe_keys.get()
    with domain_errors():
        try:
            jpeg = await keys.open(deployment_id, blob, probe_aad(crop_id, deployment_id))
        except DecryptFailed:
            log.warning("probe of alert %s failed authentication", alert_id)
            raise
    await ctx.audit.append(
        who.name, "alert.view_probe", f"alert:{alert_id}", "", {"deployment_id": deployment_id}
    )
    return Response(jpeg, media_type=blob.content_type or "image/jpeg", headers=NO_STORE)


@router.get("/alerts/{alert_id}/reference.jpg", response_class=Response)
async def reference_image(alert_id: str, ctx: Ctx, who: Operator) -> Response:
    """The watchlist image of the alert's subject (from the watchlist store); never cached; audited."""
    state = await _require_alert(ctx, alert_id)
    subject = await ctx.subject_lookup(state.subject_id, state.watchlist_id)
    thumb = str((subject or {}).get("thumbnail") or "")
    if not thumb:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "the subject has no reference image (removed?)")
    try:
        jpeg = base64.b64decode(thumb, validate=True)
    except (binascii.Error, ValueError):
        raise HTTPException(status.HTTP_500_INTERNAL_SERVER_ERROR, "reference image is corrupt") from None
    details = {"deployment_id": state.deployment_id, "watchlist_id": state.watchlist_id}
    await ctx.audit.append(who.name, "alert.view_reference", f"alert:{alert_id}", "", details)
    return Response(jpeg, media_type="image/jpeg", headers=NO_STORE)


# ---- adjudication ------------------------------------------------------------------------------------


@router.post("/alerts/{alert_id}/adjudication", response_model=AdjudicationOut)
async def adjudicate(alert_id: str, body: AdjudicationIn, ctx: Ctx, who: Operator) -> AdjudicationOut:
    """Record an officer's decision: ``match``, ``no_match`` or ``unable`` (unable to decide).

    409 when the alert was already decided differently (decisions are never overwritten); repeating the
    same decision returns 200 with ``recorded_now`` false and finishes any step a failure interrupted.
    """
    with domain_errors():
        decision = await ctx.adjudicator.decide(alert_id, body.outcome, who.name, body.note)
    return AdjudicationOut(
        adjudication_id=decision.state.adjudication_id,
        alert=AlertOut.from_state(decision.state, include_note=True),
        recorded_now=decision.recorded_now,
    )


# ---- dashboard ---------------------------------------------------------------------------------------


@router.get("/deployments/{deployment_id}/dashboard", response_model=DashboardOut)
async def dashboard(deployment_id: str, ctx: Ctx, _: Reader) -> DashboardOut:
    """Counts for the console's dashboard: faces analysed, alerts, decisions and the alert rate."""
    totals, minutes = await asyncio.gather(
        stats.totals(ctx.redis, ctx.settings, deployment_id),
        stats.per_minute(ctx.redis, ctx.settings, deployment_id, minutes=60),
    )
    return dashboard_from(deployment_id, totals, [m for _, m in minutes])
