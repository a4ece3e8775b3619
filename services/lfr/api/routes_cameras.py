"""Camera routes: list every camera with its live status, add and remove cameras of a deployment.

Adding and removing need ``watchlist-admin`` (the same people who set deployments up); every other staff role
may read (authorising officers review a deployment's cameras, operations staff watch their health).
Responses never carry camera credentials: URLs are shown with ``user:password@`` removed. Ingest
replicas pick changes up within seconds (lfr.ingest.registry).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel

from lfr.api.auth import Principal, require
from lfr.api.context import Ctx
from lfr.api.errors import domain_errors
from lfr.ingest.cameras import Camera, load_cameras
from lfr.ingest.status import read_status

router = APIRouter(prefix="/api/v1/cameras", tags=["cameras"])

Admin = Annotated[Principal, Depends(require("watchlist-admin"))]
Reader = Annotated[
    Principal,
    Depends(require("watchlist-admin", "authorising-officer", "operator", "auditor", "operations")),
]


class CameraOut(BaseModel):
    camera_id: str
    deployment_id: str
    url: str
    kind: str
    analyse_fps: float | None
    motion_gating: bool | None
    loop: bool
    defined_in: Literal["cameras file", "api"]
    status: dict[str, Any] | None = None


class CameraIn(Camera):
    reason: str = ""


def _out(cam: Camera, defined_in: Literal["cameras file", "api"], status: dict[str, Any] | None) -> CameraOut:
    return CameraOut(
        camera_id=cam.camera_id,
        deployment_id=cam.deployment_id,
        url=cam.safe_url,
        kind=cam.kind,
        analyse_fps=cam.analyse_fps,
        motion_gating=cam.motion_gating,
        loop=cam.loop,
        defined_in=defined_in,
        status=status,
    )


@router.get(
    "", response_model=list[CameraOut], summary="Every camera, with the status its ingest replica reports"
)
async def list_cameras(who: Reader, ctx: Ctx) -> list[CameraOut]:
    file_cams = load_cameras(ctx.settings) if ctx.settings.ingest.cameras_file else []
    api_cams = await ctx.cameras.list()
    known = {c.camera_id for c in file_cams}
    entries: list[tuple[Camera, Literal["cameras file", "api"]]] = [(c, "cameras file") for c in file_cams]
    entries += [(c, "api") for c in api_cams if c.camera_id not in known]
    status = await read_status(ctx.redis, ctx.settings, [c.camera_id for c, _ in entries])
    return [_out(c, origin, status.get(c.camera_id)) for c, origin in entries]


@router.post("", status_code=201, response_model=CameraOut, summary="Add a camera to an existing deployment")
async def add_camera(body: CameraIn, who: Admin, ctx: Ctx) -> CameraOut:
    camera = Camera.model_validate(body.model_dump(exclude={"reason"}))
    if await ctx.deployments.store.get(camera.deployment_id) is None:
        raise HTTPException(404, f"deployment {camera.deployment_id} does not exist")
    with domain_errors():
        await ctx.cameras.add(camera, who.name, ctx.audit, body.reason)
    return _out(camera, "api", None)


@router.delete("/{camera_id}", status_code=204, summary="Remove a camera added through the API")
async def remove_camera(camera_id: str, who: Admin, ctx: Ctx, reason: str = "") -> None:
    if not await ctx.cameras.remove(camera_id, who.name, ctx.audit, reason):
        raise HTTPException(404, f"camera {camera_id} is not registered through the API")
