"""Retrospective search over HTTP: ``POST /api/v1/search`` and ``GET /api/v1/cases/{case_ref}/searches``.

Who may do what: a search is run by an ``operator`` or a ``watchlist-admin``; a case's stored results are
read by an ``auditor`` or an ``operator``. A search without a case reference or a reason is refused (422)
before the upload is decoded. The upload lives only in a private temporary directory for the duration of
the request; results (ids and scores) are kept per case under the case's retention period (form field
``retention_days``, see lfr.retro.cases), and every search is in the audit log with the authenticated
principal as actor. Footage longer than ``retro.max_video_s`` is refused whole (413).

The multipart body is parsed with the standard library's MIME parser, so the route does not depend on the
optional ``python-multipart`` package; the size limit (``api.max_upload_bytes``) is enforced while reading,
before parsing.
"""

from __future__ import annotations

import email
import email.policy
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request, status

from lfr.api.auth import Principal, require
from lfr.api.context import ApiContext, get_ctx
from lfr.api.errors import domain_errors
from lfr.core.images import IMAGE_SUFFIXES
from lfr.retro.cases import CaseRetentionError, check_retention_days
from lfr.retro.schemas import (
    CaseSearches,
    MissingJustificationError,
    SearchResult,
    check_case_ref,
    check_reason,
)
from lfr.retro.video import VIDEO_SUFFIXES

router = APIRouter(prefix="/api/v1", tags=["retrospective search"])

_FORM_SCHEMA: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file", "case_ref", "reason"],
                    "properties": {
                        "file": {"type": "string", "format": "binary", "description": "still image or video"},
                        "case_ref": {"type": "string", "description": "case reference (required)"},
                        "reason": {"type": "string", "description": "why the search is needed (required)"},
                        "watchlists": {"type": "string", "description": "comma-separated watchlist ids"},
                        "gallery": {"type": "string", "description": "custody gallery name"},
                        "top_k": {"type": "integer", "default": 5, "minimum": 1, "maximum": 50},
                        "retention_days": {
                            "type": "integer",
                            "minimum": 1,
                            "description": "the case's retention period (default: the case's, else "
                            "retro.case_retention_days)",
                        },
                    },
                }
            }
        },
    }
}


@dataclass(frozen=True)
class UploadedFile:
    filename: str
    data: bytes


async def read_limited(request: Request, limit: int) -> bytes:
    """The request body, refusing (413) anything over ``limit`` bytes without reading it all."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise HTTPException(status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, f"upload exceeds {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, f"upload exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_multipart(
    content_type: str, body: bytes
) -> tuple[dict[str, list[str]], list[tuple[str, UploadedFile]]]:
    """Form fields and files of a multipart/form-data body (422 when it is not one)."""
    if not content_type.lower().startswith("multipart/form-data") or "boundary=" not in content_type:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, "send multipart/form-data with a file field"
        )
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    msg = email.message_from_bytes(head + body, policy=email.policy.HTTP)
    if not msg.is_multipart():
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "malformed multipart body")
    fields: dict[str, list[str]] = {}
    files: list[tuple[str, UploadedFile]] = []
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        raw = part.get_payload(decode=True)
        payload = raw if isinstance(raw, bytes) else b""
        filename = part.get_filename()
        if filename is not None:
            files.append((str(name), UploadedFile(str(filename), payload)))
        else:
            charset = part.get_content_charset() or "utf-8"
            fields.setdefault(str(name), []).append(payload.decode(charset, errors="replace"))
    return fields, files


def _one(fields: dict[str, list[str]], name: str) -> str | None:
    values = [v.strip() for v in fields.get(name, []) if v.strip()]
    return values[-1] if values else None


@router.post("/search", response_model=SearchResult, openapi_extra=_FORM_SCHEMA)
async def search(
    request: Request,
    who: Principal = Depends(require("operator", "watchlist-admin")),
    ctx: ApiContext = Depends(get_ctx),
) -> SearchResult:
    """Search every face in an uploaded still or video for a case; returns candidate lists for review."""
    body = await read_limited(request, ctx.settings.api.max_upload_bytes)
    fields, files = parse_multipart(request.headers.get("content-type", ""), body)
    try:
        case_ref = check_case_ref(_one(fields, "case_ref"))
        reason = check_reason(_one(fields, "reason"))
    except MissingJustificationError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"search refused: {exc}") from None
    uploads = [f for name, f in files if name == "file"]
    if len(uploads) != 1 or not uploads[0].data:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "send exactly one non-empty file field")
    suffix = Path(uploads[0].filename).suffix.lower()
    if suffix not in IMAGE_SUFFIXES | VIDEO_SUFFIXES:
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            f"file type {suffix or '(none)'} is not a supported image or video",
        )
    watchlists = [w.strip() for v in fields.get("watchlists", []) for w in v.split(",") if w.strip()]
    gallery = _one(fields, "gallery")
    top_k_text = _one(fields, "top_k") or "5"
    if not top_k_text.isdigit():
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "top_k must be a whole number")
    retention_text = _one(fields, "retention_days")
    if retention_text is not None and not retention_text.isdigit():
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "retention_days must be a whole number")
    retention_days = int(retention_text) if retention_text is not None else None
    try:
        check_retention_days(ctx.settings, retention_days)
    except CaseRetentionError as exc:  # before the face models load or the upload is written
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"search refused: {exc}") from None
    searcher = await ctx.retro.get()
    with tempfile.TemporaryDirectory(prefix="lfr-retro-") as tmp:
        path = Path(tmp) / f"upload{suffix}"
        path.write_bytes(uploads[0].data)
        with domain_errors():
            return await searcher.search(
                path,
                case_ref,
                reason,
                who.name,
                watchlists,
                gallery,
                int(top_k_text),
                retention_days,
            )


@router.get("/cases/{case_ref}/searches", response_model=CaseSearches)
async def case_searches(
    case_ref: str,
    who: Principal = Depends(require("auditor", "operator")),
    ctx: ApiContext = Depends(get_ctx),
) -> CaseSearches:
    """The case's stored search results (until its retention period ends), oldest first."""
    with domain_errors():
        results = await ctx.cases.list(case_ref)
        days = await ctx.cases.retention_days(case_ref)
    return CaseSearches(case_ref=case_ref, searches=results, retention_days=days)
