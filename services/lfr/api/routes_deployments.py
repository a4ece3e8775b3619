"""Deployment routes: create (showing the false-alert rate to expect), authorise, start, stop (and purge),
change the threshold, read.

Changes need ``watchlist-admin``; reads also admit ``auditor``, who reviews what was authorised. State rules
and threshold governance live in lfr.watchlist.deployments, shared with the CLI; refusals come back as 409
(wrong state or outside the time window) or 422 (governance: officer, threshold reason).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from lfr.api.auth import Principal, require
from lfr.api.routes_watchlists import ERRORS, Svc, domain_errors
from lfr.watchlist.deployments import DeploymentSpec
from lfr.watchlist.schemas import AuthoriseIn, DeploymentOut, StopIn, ThresholdIn

router = APIRouter(prefix="/api/v1/deployments", tags=["deployments"])
DEP_ERRORS = {**ERRORS, 409: ERRORS[422]}

Admin = Annotated[Principal, Depends(require("watchlist-admin"))]
Reader = Annotated[Principal, Depends(require("watchlist-admin", "auditor"))]


@router.post(
    "",
    status_code=201,
    response_model=DeploymentOut,
    responses=DEP_ERRORS,
    summary="Create a draft deployment; the response shows the false-alert rate to expect",
)
async def create_deployment(body: DeploymentSpec, who: Admin, svc: Svc) -> DeploymentOut:
    with domain_errors():
        return await svc.create_deployment(body, who.name)


@router.get("", response_model=list[DeploymentOut], responses=DEP_ERRORS, summary="All deployments")
async def list_deployments(who: Reader, svc: Svc) -> list[DeploymentOut]:
    with domain_errors():
        return await svc.list_deployments()


@router.get("/{deployment_id}", response_model=DeploymentOut, responses=DEP_ERRORS, summary="One deployment")
async def get_deployment(deployment_id: str, who: Reader, svc: Svc) -> DeploymentOut:
    with domain_errors():
        return await svc.get_deployment(deployment_id)


@router.post(
    "/{deployment_id}/authorise",
    response_model=DeploymentOut,
    responses=DEP_ERRORS,
    summary="Authorise a draft (by the officer it names)",
)
async def authorise(deployment_id: str, body: AuthoriseIn, who: Admin, svc: Svc) -> DeploymentOut:
    with domain_errors():
        return await svc.authorise(deployment_id, body.officer, who.name)


@router.post(
    "/{deployment_id}/start",
    response_model=DeploymentOut,
    responses=DEP_ERRORS,
    summary="Start an authorised deployment inside its time window",
)
async def start(deployment_id: str, who: Admin, svc: Svc) -> DeploymentOut:
    with domain_errors():
        return await svc.start(deployment_id, who.name)


@router.post(
    "/{deployment_id}/stop",
    response_model=DeploymentOut,
    responses=DEP_ERRORS,
    summary="Stop; with purge=true also delete the deployment's alert data at once",
)
async def stop(
    deployment_id: str,
    who: Admin,
    svc: Svc,
    purge: Annotated[bool, Query(description="delete the deployment's alerts and probe images now")] = False,
    body: StopIn | None = None,
) -> DeploymentOut:
    with domain_errors():
        return await svc.stop(deployment_id, who.name, purge, body.reason if body else "")


@router.put(
    "/{deployment_id}/threshold",
    response_model=DeploymentOut,
    responses=DEP_ERRORS,
    summary="Change the match threshold (looser than the model's floor needs a reason)",
)
async def set_threshold(deployment_id: str, body: ThresholdIn, who: Admin, svc: Svc) -> DeploymentOut:
    with domain_errors():
        return await svc.set_threshold(deployment_id, body.threshold, body.reason, who.name)
