"""Deployment routes: create (showing the false-alert rate to expect), authorise or refuse, start, stop (and
purge), change the threshold, publish the transparency record, read.

Set-up changes need ``watchlist-admin``; authorising, refusing and publishing need ``authorising-officer``
and are done as the signed-in officer (the token's name must be the officer the deployment names, so one
officer cannot decide for another). Reads admit every staff role: auditors review what was authorised,
operators and operations staff pick the deployment they watch. State rules and threshold governance live in
lfr.watchlist.deployments, shared with the CLI; refusals come back as 409 (wrong state or outside the time
window) or 422 (governance: officer, threshold reason).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, Field

from lfr.api.auth import Principal, require
from lfr.api.context import Ctx
from lfr.api.errors import ERRORS, domain_errors
from lfr.watchlist.deployments import DeploymentSpec
from lfr.watchlist.schemas import DeploymentOut, StopIn, ThresholdIn

router = APIRouter(prefix="/api/v1/deployments", tags=["deployments"])
DEP_ERRORS = {**ERRORS, 409: ERRORS[422]}

Admin = Annotated[Principal, Depends(require("watchlist-admin"))]
Officer = Annotated[Principal, Depends(require("authorising-officer"))]
Reader = Annotated[
    Principal,
    Depends(require("watchlist-admin", "authorising-officer", "auditor", "operator", "operations")),
]


class DecisionIn(BaseModel):
    """An authorising officer's decision; ``officer``, when given, must be the signed-in officer."""

    officer: str | None = Field(None, max_length=200)


class RefuseIn(DecisionIn):
    reason: str = Field(min_length=1, max_length=2000, description="recorded in the audit log")


class PublishIn(BaseModel):
    published: bool = Field(description="show the deployment's figures on the public transparency page")


def _as_officer(who: Principal, named: str | None) -> str:
    if named is not None and named.strip().casefold() != who.name.casefold():
        raise HTTPException(422, f"signed in as {who.name!r}: decide as yourself, not as {named.strip()!r}")
    return who.name


@router.post(
    "",
    status_code=201,
    response_model=DeploymentOut,
    responses=DEP_ERRORS,
    summary="Create a draft deployment; the response shows the false-alert rate to expect",
)
async def create_deployment(body: DeploymentSpec, who: Admin, ctx: Ctx) -> DeploymentOut:
    with domain_errors():
        return await ctx.deployments.create_deployment(body, who.name)


@router.get("", response_model=list[DeploymentOut], responses=DEP_ERRORS, summary="All deployments")
async def list_deployments(who: Reader, ctx: Ctx) -> list[DeploymentOut]:
    with domain_errors():
        return await ctx.deployments.list_deployments()


@router.get("/{deployment_id}", response_model=DeploymentOut, responses=DEP_ERRORS, summary="One deployment")
async def get_deployment(deployment_id: str, who: Reader, ctx: Ctx) -> DeploymentOut:
    with domain_errors():
        return await ctx.deployments.get_deployment(deployment_id)


@router.post(
    "/{deployment_id}/authorise",
    response_model=DeploymentOut,
    responses=DEP_ERRORS,
    summary="Authorise a draft (by the officer it names, signed in)",
)
async def authorise(
    deployment_id: str, who: Officer, ctx: Ctx, body: DecisionIn | None = None
) -> DeploymentOut:
    officer = _as_officer(who, body.officer if body else None)
    with domain_errors():
        return await ctx.deployments.authorise(deployment_id, officer, officer)


@router.post(
    "/{deployment_id}/refuse",
    response_model=DeploymentOut,
    responses=DEP_ERRORS,
    summary="Refuse a draft with a reason (by the officer it names, signed in); it can never run",
)
async def refuse(deployment_id: str, body: RefuseIn, who: Officer, ctx: Ctx) -> DeploymentOut:
    officer = _as_officer(who, body.officer)
    with domain_errors():
        return await ctx.deployments.refuse(deployment_id, officer, body.reason)


@router.put(
    "/{deployment_id}/published",
    response_model=DeploymentOut,
    responses=DEP_ERRORS,
    summary="Switch the public transparency record on or off (by the officer who authorised it)",
)
async def publish(deployment_id: str, body: PublishIn, who: Officer, ctx: Ctx) -> DeploymentOut:
    with domain_errors():
        return await ctx.deployments.publish(deployment_id, who.name, body.published)


@router.post(
    "/{deployment_id}/start",
    response_model=DeploymentOut,
    responses=DEP_ERRORS,
    summary="Start an authorised deployment inside its time window",
)
async def start(deployment_id: str, who: Admin, ctx: Ctx) -> DeploymentOut:
    with domain_errors():
        return await ctx.deployments.start(deployment_id, who.name)


@router.post(
    "/{deployment_id}/stop",
    response_model=DeploymentOut,
    responses=DEP_ERRORS,
    summary="Stop; with purge=true also delete the deployment's alert data at once",
)
async def stop(
    deployment_id: str,
    who: Admin,
    ctx: Ctx,
    purge: Annotated[bool, Query(description="delete the deployment's alerts and probe images now")] = False,
    body: StopIn | None = None,
) -> DeploymentOut:
    with domain_errors():
        return await ctx.deployments.stop(deployment_id, who.name, purge, body.reason if body else "")


@router.put(
    "/{deployment_id}/threshold",
    response_model=DeploymentOut,
    responses=DEP_ERRORS,
    summary="Change the match threshold (looser than the model's floor needs a reason)",
)
async def set_threshold(deployment_id: str, body: ThresholdIn, who: Admin, ctx: Ctx) -> DeploymentOut:
    with domain_errors():
        return await ctx.deployments.set_threshold(deployment_id, body.threshold, body.reason, who.name)
