"""Enrolment helpers for the watchlist administrator's console page: a preview that saves nothing, and the
record of a bulk import run from the browser.

The preview runs the enrolment checks (decoding limits, detection, quality gate) on an uploaded photo and
returns the faces found with their quality and the verdict, so the administrator replaces a photo that
would be refused before saving. Nothing is stored; the preview is audited (an image of a person was
processed, by whom and for which watchlist) without the image or anything derived from it.

A browser import enrols row by row through the ordinary enrol route (each image audited there); the page
then posts the run's totals here, so the audit log also holds one ``watchlist.import`` record per import,
as the CLI import writes.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, File, Request, UploadFile
from pydantic import BaseModel, Field

from lfr.api.auth import Principal, require
from lfr.api.context import Ctx
from lfr.api.errors import ERRORS, domain_errors
from lfr.api.routes_watchlists import _read_capped, _wl
from lfr.watchlist.preview import preview

router = APIRouter(prefix="/api/v1/watchlists", tags=["watchlists"])

Admin = Annotated[Principal, Depends(require("watchlist-admin"))]


class FaceOut(BaseModel):
    box: tuple[float, float, float, float] = Field(description="x, y, width, height in the photo's pixels")
    detector_score: float
    passed: bool = Field(description="whether this face passes the quality gate")
    reasons: list[str] = Field(description="why it does not pass; empty when it does")
    quality_score: float
    face_px: float
    sharpness: float
    yaw_ratio: float
    chip: str = Field(description="base64 JPEG of the aligned face")


class PreviewOut(BaseModel):
    accepted: bool = Field(description="whether enrolment would accept this photo")
    code: str = Field(description="the refusal's reason code (no_face, several_faces...); empty if accepted")
    verdict: str
    width: int = Field(description="width of the photo as analysed (large photos are reduced first)")
    height: int
    faces: list[FaceOut]


class ImportRunIn(BaseModel):
    total: int = Field(ge=0)
    accepted: int = Field(ge=0)
    rejected_by_reason: dict[str, int] = Field(default_factory=dict, max_length=50)
    reason: str = Field("", max_length=2000)


class ImportRunOut(BaseModel):
    watchlist_id: str
    audit_seq: int


@router.post(
    "/{watchlist_id}/preview",
    response_model=PreviewOut,
    responses=ERRORS,
    summary="What enrolment would make of a photo (faces, quality, verdict), saving nothing",
)
async def preview_photo(
    watchlist_id: str,
    request: Request,
    who: Admin,
    ctx: Ctx,
    image: Annotated[UploadFile, File(description="the photo to check")],
) -> PreviewOut:
    wl = _wl(watchlist_id)
    data = await _read_capped(request, image, ctx.settings.api.max_upload_bytes)
    enroller = ctx.subjects.enroller
    with domain_errors():
        # The enroller's lock: detectors keep per-call state, and an enrolment may be running.
        result = await asyncio.to_thread(preview, enroller.analyzer, data, ctx.settings, enroller._run_lock)
        await ctx.audit.append(
            who.name,
            "watchlist.preview",
            wl,
            "",
            {"watchlist_id": wl, "accepted": str(result.accepted).lower(), "code": result.code},
        )
    return PreviewOut(
        accepted=result.accepted,
        code=result.code,
        verdict=result.verdict,
        width=result.width,
        height=result.height,
        faces=[FaceOut(**{**f.__dict__, "chip": f.chip_jpeg_b64}) for f in result.faces],
    )


@router.post(
    "/{watchlist_id}/imports",
    status_code=201,
    response_model=ImportRunOut,
    responses=ERRORS,
    summary="Record the totals of a bulk import run from the console (each image was audited as enrolled)",
)
async def record_import(watchlist_id: str, body: ImportRunIn, who: Admin, ctx: Ctx) -> ImportRunOut:
    wl = _wl(watchlist_id)
    rejected = sum(body.rejected_by_reason.values())
    details = {
        "watchlist_id": wl,
        "total": str(body.total),
        "accepted": str(body.accepted),
        "rejected": str(rejected),
        "via": "console",
    }
    details.update({f"rejected_{k[:40]}": str(v) for k, v in body.rejected_by_reason.items()})
    with domain_errors():
        event = await ctx.audit.append(who.name, "watchlist.import", wl, body.reason, details)
    return ImportRunOut(watchlist_id=wl, audit_seq=event.seq)
