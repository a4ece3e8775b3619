"""The console: one static page per role (and the public transparency page) served at /console, no external
resources (works offline, no build step).

The pages hold no data and need no token; everything they show comes from the API with the user's bearer
token (``/api/v1/console/session`` tells a page at sign-in which roles the token holds, so it shows only
the actions those roles may take; the API refuses the rest with 403).
A strict Content-Security-Policy allows only this origin, so a compromised
dependency or injected markup cannot send probe images elsewhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, status
from fastapi.responses import FileResponse, RedirectResponse
from pydantic import BaseModel

import lfr.console
from lfr.api.auth import Principal, principal

router = APIRouter(tags=["console"], include_in_schema=False)

STATIC = Path(lfr.console.__file__).resolve().parent / "static"
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}
# Every page of the console (one per role, and the public transparency page), read once: only these names
# are served, so a request can never reach another file.
FILES = {p.name: TYPES[p.suffix] for p in sorted(STATIC.iterdir()) if p.suffix in TYPES}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' blob:; connect-src 'self'; script-src 'self'; "
        "style-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


class SessionOut(BaseModel):
    name: str
    roles: list[str]


@router.get("/api/v1/console/session", response_model=SessionOut, include_in_schema=True)
async def console_session(who: Annotated[Principal, Depends(principal)]) -> SessionOut:
    """Who the token belongs to and its roles: the console checks for ``operator`` at sign-in."""
    return SessionOut(name=who.name, roles=sorted(who.roles))


@router.get("/console")
async def console_root() -> RedirectResponse:
    return RedirectResponse("/console/", status_code=status.HTTP_308_PERMANENT_REDIRECT)


@router.get("/console/")
async def console_index() -> FileResponse:
    return _file("index.html")


@router.get("/console/{name}")
async def console_file(name: str) -> FileResponse:
    if name not in FILES:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "not found")
    return _file(name)


def _file(name: str) -> FileResponse:
    return FileResponse(STATIC / name, media_type=FILES[name], headers=SECURITY_HEADERS)
