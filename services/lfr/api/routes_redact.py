"""Evidence redaction over HTTP: upload, run in the background with progress, preview, download.

* ``POST /api/v1/redactions`` (multipart: ``file``, ``case_ref``, ``reason``, optional ``style``,
  ``keep_tracks``, ``keep_subjects`` + ``watchlists`` (comma lists), ``preview``): 202 with the job id.
  Refused (422) without a case reference or reason, before the upload is written anywhere.
* ``GET /api/v1/redactions/{job_id}``: status, phase, progress, the report when done, and the tracks list
  when a preview was asked for (choose ``keep_tracks`` from it and submit again).
* ``GET .../output``, ``.../report``, ``.../preview.png``: the redacted file, the report, the contact
  sheet. Handing out the output or the sheet (which shows faces) is audited
  (``evidence.redact.download``, ``evidence.redact.view_preview``).
* ``DELETE /api/v1/redactions/{job_id}``: drop the job and its files.

Who: ``operator`` and ``watchlist-admin`` (the roles that may run retrospective searches). The work and
the files live in lfr.redact.jobs (per replica; see there).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.responses import FileResponse

from lfr.api.auth import Principal, Role, require
from lfr.api.context import ApiContext, get_ctx
from lfr.api.errors import domain_errors
from lfr.api.routes_search import _one, parse_multipart, read_limited
from lfr.core.images import IMAGE_SUFFIXES
from lfr.redact.engine import RedactError
from lfr.redact.jobs import Job, JobRegistry
from lfr.redact.masks import STYLES
from lfr.redact.media import VIDEO_SUFFIXES
from lfr.redact.service import (
    RedactRequest,
    check_justification,
    check_request,
)

router = APIRouter(prefix="/api/v1", tags=["evidence redaction"])
ROLES: tuple[Role, ...] = ("operator", "watchlist-admin")


def _list(fields: dict[str, list[str]], name: str) -> list[str]:
    return [w.strip() for v in fields.get(name, []) for w in v.split(",") if w.strip()]


@router.post("/redactions", status_code=status.HTTP_202_ACCEPTED)
async def create_redaction(
    request: Request,
    who: Principal = Depends(require(*ROLES)),
    ctx: ApiContext = Depends(get_ctx),
) -> dict[str, Any]:
    """Start redacting an uploaded video or still for a case; poll the job for progress and the result."""
    body = await read_limited(request, ctx.settings.api.max_upload_bytes)
    fields, files = parse_multipart(request.headers.get("content-type", ""), body)
    with domain_errors():
        case_ref, reason = check_justification(_one(fields, "case_ref"), _one(fields, "reason"))
    uploads = [f for name, f in files if name == "file"]
    if len(uploads) != 1 or not uploads[0].data:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "send exactly one non-empty file field")
    suffix = Path(uploads[0].filename).suffix.lower()
    if suffix not in IMAGE_SUFFIXES | VIDEO_SUFFIXES:
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, f"file type {suffix or '(none)'} is not a video or image"
        )
    style = _one(fields, "style") or ctx.settings.redact.style
    if style not in STYLES:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"style must be one of {', '.join(STYLES)}"
        )
    keep_text = _list(fields, "keep_tracks")
    if not all(t.isdigit() for t in keep_text):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "keep_tracks must be track numbers")
    reg = await ctx.redaction.get()
    job_id, folder = reg.folder()
    source = folder / f"upload{suffix}"
    source.write_bytes(uploads[0].data)
    out_suffix = ".mp4" if suffix in VIDEO_SUFFIXES else (".png" if suffix == ".png" else ".jpg")
    req = RedactRequest(
        source=source,
        output=folder / f"redacted{out_suffix}",
        case_ref=case_ref,
        reason=reason,
        actor=who.name,
        keep_subjects=_list(fields, "keep_subjects"),
        keep_tracks=[int(t) for t in keep_text],
        watchlists=_list(fields, "watchlists"),
        style=style,
        preview_dir=folder / "preview"
        if (_one(fields, "preview") or "").lower() in ("1", "true", "yes")
        else None,
        extra_audit={"via": "api", "job_id": job_id},
    )
    try:
        check_request(req)
    except RedactError as exc:
        reg.drop(job_id)
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    job = reg.submit(job_id, folder, req)
    return job.view()


async def _job(ctx: ApiContext, job_id: str) -> tuple[JobRegistry, Job]:
    reg = await ctx.redaction.get()
    job = reg.get(job_id)
    if job is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no redaction job {job_id} on this replica")
    return reg, job


@router.get("/redactions/{job_id}")
async def redaction_status(
    job_id: str, who: Principal = Depends(require(*ROLES)), ctx: ApiContext = Depends(get_ctx)
) -> dict[str, Any]:
    """Status, progress and (when done) the report and the tracks to choose from."""
    _, job = await _job(ctx, job_id)
    return job.view()


@router.get("/redactions/{job_id}/report")
async def redaction_report(
    job_id: str, who: Principal = Depends(require(*ROLES)), ctx: ApiContext = Depends(get_ctx)
) -> dict[str, Any]:
    _, job = await _job(ctx, job_id)
    if job.report is None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"job is {job.status}")
    return job.report


@router.get("/redactions/{job_id}/output")
async def redaction_output(
    job_id: str, who: Principal = Depends(require(*ROLES)), ctx: ApiContext = Depends(get_ctx)
) -> FileResponse:
    """The redacted file (audited hand-out)."""
    _, job = await _job(ctx, job_id)
    if job.status != "done" or job.output is None or not job.output.is_file() or job.report is None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"job is {job.status}: no output yet")
    await ctx.audit.append(
        who.name,
        "evidence.redact.download",
        f"case:{job.case_ref}",
        details={"job_id": job_id, "output_sha256": str(job.report["output"]["sha256"])},
    )
    media = {".mp4": "video/mp4", ".png": "image/png"}.get(job.output.suffix, "image/jpeg")
    return FileResponse(job.output, media_type=media, filename=f"redacted-{job_id}{job.output.suffix}")


@router.get("/redactions/{job_id}/preview.png")
async def redaction_preview(
    job_id: str, who: Principal = Depends(require(*ROLES)), ctx: ApiContext = Depends(get_ctx)
) -> FileResponse:
    """The contact sheet of the tracks (it shows faces: audited)."""
    _, job = await _job(ctx, job_id)
    if job.sheet is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no preview for this job (ask with preview=1)")
    await ctx.audit.append(
        who.name, "evidence.redact.view_preview", f"case:{job.case_ref}", details={"job_id": job_id}
    )
    return FileResponse(job.sheet, media_type="image/png")


@router.delete("/redactions/{job_id}", status_code=status.HTTP_204_NO_CONTENT)
async def drop_redaction(
    job_id: str, who: Principal = Depends(require(*ROLES)), ctx: ApiContext = Depends(get_ctx)
) -> Response:
    reg, _ = await _job(ctx, job_id)
    reg.drop(job_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
