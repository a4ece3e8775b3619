"""Audit routes for the ``auditor`` role: verify the hash chain and read the latest records.

Verification reads the whole lfr.audit.v1 topic and recomputes every hash, so it names the first record
that was modified, removed or reordered; it is deliberately not cached.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from lfr.api.auth import Principal, require
from lfr.api.routes_watchlists import ERRORS, Svc, domain_errors
from lfr.watchlist.schemas import AuditCheckOut, AuditEventOut

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])

Auditor = Annotated[Principal, Depends(require("auditor"))]


@router.get("/verify", response_model=AuditCheckOut, responses=ERRORS, summary="Verify the audit hash chain")
async def verify(who: Auditor, svc: Svc) -> AuditCheckOut:
    with domain_errors():
        return await svc.verify_audit()


@router.get(
    "/events", response_model=list[AuditEventOut], responses=ERRORS, summary="The latest audit records"
)
async def events(
    who: Auditor, svc: Svc, limit: Annotated[int, Query(ge=1, le=10_000)] = 50
) -> list[AuditEventOut]:
    with domain_errors():
        return await svc.audit_events(limit)
