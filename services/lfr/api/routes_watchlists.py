"""Watchlist routes: enrol a subject from an uploaded photo, list, read, update and delete subjects, sweep.

Writes need ``watchlist-admin``; reads also admit ``auditor``. The handlers only parse and serialise:
every rule (image checks, audit) lives in lfr.watchlist.subjects, shared with the CLI. Uploads are read
with a hard cap so an oversized image is refused (413) without being held in memory whole.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, HTTPException, Query, Request, UploadFile

from lfr.api.auth import Principal, require
from lfr.api.context import ApiContext, get_ctx
from lfr.api.errors import ERRORS, domain_errors
from lfr.watchlist.schemas import (
    DeleteOut,
    SubjectList,
    SubjectOut,
    SubjectUpdate,
    SweepOut,
    WatchlistSummary,
)
from lfr.watchlist.store import SubjectMeta
from lfr.watchlist.subjects import SubjectService
from lfr.watchlist.types import Category, now_s, parse_image_date, parse_when, validate_id

router = APIRouter(prefix="/api/v1/watchlists", tags=["watchlists"])

Admin = Annotated[Principal, Depends(require("watchlist-admin"))]
Reader = Annotated[Principal, Depends(require("watchlist-admin", "auditor"))]


def subjects(ctx: Annotated[ApiContext, Depends(get_ctx)]) -> SubjectService:
    return ctx.subjects


Subjects = Annotated[SubjectService, Depends(subjects)]


def _wl(watchlist_id: str) -> str:
    try:
        return validate_id(watchlist_id, "watchlist_id")
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None


async def _read_capped(request: Request, upload: UploadFile, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + 64 * 1024:
        raise HTTPException(
            413,
            f"upload of {int(declared):,} bytes exceeds the {limit:,}-byte limit (api.max_upload_bytes)",
        )
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise HTTPException(
            413,
            f"image exceeds the {limit:,}-byte limit (api.max_upload_bytes)",
        )
    return data


@router.post(
    "/{watchlist_id}/subjects",
    status_code=201,
    response_model=SubjectOut,
    responses=ERRORS,
    summary="Enrol a subject (or another photo of one) from an uploaded image",
)
async def enrol_subject(
    watchlist_id: str,
    request: Request,
    who: Admin,
    svc: Subjects,
    image: Annotated[UploadFile, File(description="a photo with exactly one clear face")],
    subject_id: Annotated[str, Form()],
    display_name: Annotated[str, Form(max_length=256)] = "",
    category: Annotated[Category, Form()] = Category.WANTED,
    source: Annotated[str, Form(max_length=256)] = "",
    image_date: Annotated[str, Form(description="YYYY-MM-DD")] = "",
    expires_at: Annotated[
        str, Form(description="ISO date/datetime, epoch seconds or 90d; empty = never")
    ] = "",
    reason: Annotated[str, Form(max_length=2000)] = "",
) -> SubjectOut:
    wl = _wl(watchlist_id)
    data = await _read_capped(request, image, svc.settings.api.max_upload_bytes)
    with domain_errors():
        meta = SubjectMeta(
            subject_id=subject_id,
            watchlist_id=wl,
            display_name=display_name,
            category=category,
            source=source,
            image_date=parse_image_date(image_date),
            expires_at=parse_when(expires_at),
        )
        rec = await svc.enrol(meta, data, who.name, reason)
    return SubjectOut.of(rec)


@router.get(
    "", response_model=list[WatchlistSummary], responses=ERRORS, summary="Watchlists and subject counts"
)
async def list_watchlists(who: Reader, svc: Subjects) -> list[WatchlistSummary]:
    with domain_errors():
        counts = await svc.watchlists()
    return [WatchlistSummary(watchlist_id=w, subjects=n) for w, n in counts.items()]


@router.get(
    "/{watchlist_id}/subjects",
    response_model=SubjectList,
    responses=ERRORS,
    summary="Subjects of a watchlist",
)
async def list_subjects(
    watchlist_id: str,
    who: Reader,
    svc: Subjects,
    thumbnails: Annotated[bool, Query(description="include each subject's thumbnail")] = False,
) -> SubjectList:
    wl = _wl(watchlist_id)
    with domain_errors():
        recs = await svc.list_subjects(wl, thumbnails)
    return SubjectList(watchlist_id=wl, count=len(recs), subjects=[SubjectOut.of(r) for r in recs])


@router.get(
    "/{watchlist_id}/subjects/{subject_id}",
    response_model=SubjectOut,
    responses=ERRORS,
    summary="One subject, with its thumbnail",
)
async def get_subject(watchlist_id: str, subject_id: str, who: Reader, svc: Subjects) -> SubjectOut:
    with domain_errors():
        return SubjectOut.of(await svc.get_subject(_wl(watchlist_id), validate_id(subject_id, "subject_id")))


@router.patch(
    "/{watchlist_id}/subjects/{subject_id}",
    response_model=SubjectOut,
    responses=ERRORS,
    summary="Change a subject's category, name, source, image date or expiry",
)
async def update_subject(
    watchlist_id: str, subject_id: str, body: SubjectUpdate, who: Admin, svc: Subjects
) -> SubjectOut:
    with domain_errors():
        changes = body.model_dump(exclude={"reason"}, exclude_none=True)
        if "expires_at" in changes:
            changes["expires_at"] = parse_when(changes["expires_at"])
        if "image_date" in changes:
            changes["image_date"] = parse_image_date(changes["image_date"])
        rec = await svc.update_subject(
            _wl(watchlist_id), validate_id(subject_id, "subject_id"), changes, who.name, body.reason
        )
    return SubjectOut.of(rec)


@router.delete(
    "/{watchlist_id}/subjects/{subject_id}",
    response_model=DeleteOut,
    responses=ERRORS,
    summary="Delete a subject and all its images; searches stop finding it at once",
)
async def delete_subject(
    watchlist_id: str,
    subject_id: str,
    who: Admin,
    svc: Subjects,
    reason: Annotated[str, Query(max_length=2000, description="recorded in the audit log")] = "",
) -> DeleteOut:
    wl = _wl(watchlist_id)
    with domain_errors():
        sid = validate_id(subject_id, "subject_id")
        n = await svc.delete_subject(wl, sid, who.name, reason)
    return DeleteOut(watchlist_id=wl, subject_id=sid, images_deleted=n)


@router.post("/sweep", response_model=SweepOut, responses=ERRORS, summary="Delete every expired entry now")
async def sweep(who: Admin, svc: Subjects) -> SweepOut:
    t = now_s()
    with domain_errors():
        n = await svc.sweep(who.name, t)
    return SweepOut(rows_deleted=n, at=t)
