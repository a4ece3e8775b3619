"""Audit routes for the ``auditor`` role: verify the hash chain, read the latest records, search and export.

Both verification and search go through the audit trail's incremental reader (lfr.watchlist.audit_reader):
it keeps the records read so far with their running chain state and fetches only those appended since, so
a request costs the new records. Verification still names the first record that was modified, removed or
reordered; ``full=true`` has the whole topic read and hashed again. The search rules (actor, action,
deployment, time) are the domain's ``AuditQuery``. An export is itself audited: who took a copy of the
audit trail, and of which records, is part of it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from lfr.api.auth import Principal, require
from lfr.api.context import Ctx
from lfr.api.errors import ERRORS, domain_errors
from lfr.core.csvsafe import render_rows
from lfr.watchlist.audit_query import AuditQuery, deployment_of
from lfr.watchlist.schemas import AuditCheckOut, AuditEventOut

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])

Auditor = Annotated[Principal, Depends(require("auditor"))]
EXPORT_COLUMNS = ("seq", "time", "actor", "action", "target", "reason", "deployment_id", "details", "hash")


@router.get("/verify", response_model=AuditCheckOut, responses=ERRORS, summary="Verify the audit hash chain")
async def verify(
    who: Auditor,
    ctx: Ctx,
    full: Annotated[
        bool, Query(description="read and hash the whole topic again, not only new records")
    ] = False,
) -> AuditCheckOut:
    with domain_errors():
        return await ctx.audit_trail.verify_audit(full)


@router.get(
    "/events", response_model=list[AuditEventOut], responses=ERRORS, summary="The latest audit records"
)
async def events(
    who: Auditor, ctx: Ctx, limit: Annotated[int, Query(ge=1, le=10_000)] = 50
) -> list[AuditEventOut]:
    with domain_errors():
        return await ctx.audit_trail.audit_events(limit)


async def _search(
    ctx: Ctx,
    actor: str,
    action: str,
    deployment: str,
    since: datetime | None,
    until: datetime | None,
    limit: int | None = None,
) -> list[AuditEventOut]:
    query = AuditQuery(actor, action, deployment, since, until)
    with domain_errors():
        return await ctx.audit_trail.search(query, limit)


Actor = Annotated[str, Query(max_length=200, description="who did it (exact, any case)")]
Action = Annotated[
    str, Query(max_length=100, description="e.g. deployment.authorise, or deployment. for all")
]
Deployment = Annotated[str, Query(max_length=128, description="records about this deployment")]
Since = Annotated[datetime | None, Query(description="from this time (ISO 8601; UTC when no offset)")]
Until = Annotated[datetime | None, Query(description="before this time")]


@router.get(
    "/search",
    response_model=list[AuditEventOut],
    responses=ERRORS,
    summary="Audit records by actor, action, deployment and time, newest first",
)
async def search(
    who: Auditor,
    ctx: Ctx,
    actor: Actor = "",
    action: Action = "",
    deployment: Deployment = "",
    since: Since = None,
    until: Until = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 200,
) -> list[AuditEventOut]:
    found = await _search(ctx, actor, action, deployment, since, until, limit)
    return list(reversed(found))


@router.get(
    "/export",
    responses={**ERRORS, 200: {"content": {"text/csv": {}, "application/json": {}}}},
    summary="The matching audit records as a CSV or JSON file (oldest first); the export is audited",
)
async def export(
    who: Auditor,
    ctx: Ctx,
    format: Annotated[Literal["csv", "json"], Query()] = "csv",
    actor: Actor = "",
    action: Action = "",
    deployment: Deployment = "",
    since: Since = None,
    until: Until = None,
) -> Response:
    found = await _search(ctx, actor, action, deployment, since, until)
    filters = {"actor": actor, "action": action, "deployment": deployment}
    filters |= {"since": since.isoformat() if since else "", "until": until.isoformat() if until else ""}
    with domain_errors():
        await ctx.audit.append(
            who.name,
            "audit.export",
            "audit",
            "",
            {"format": format, "records": str(len(found)), **{k: v for k, v in filters.items() if v}},
        )
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    headers = {"Content-Disposition": f'attachment; filename="lfr-audit-{stamp}.{format}"'}
    if format == "json":
        body = "[" + ",\n".join(e.model_dump_json() for e in found) + "]\n"
        return Response(body, media_type="application/json", headers=headers)
    rows: list[list[object]] = [list(EXPORT_COLUMNS)]
    for e in found:
        details = ";".join(f"{k}={v}" for k, v in sorted(e.details.items()))
        dep = deployment_of(e.action, e.target, e.details)
        rows.append([e.seq, e.time, e.actor, e.action, e.target, e.reason, dep, details, e.hash])
    return Response(render_rows(rows), media_type="text/csv; charset=utf-8", headers=headers)
