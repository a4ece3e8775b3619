"""What the role-page browser tests share: the whole `lfr api` app on a loopback port, one token per role,
Chromium pages that fail the test on any console error, and screenshots of each page.

Screenshots go to test-artifacts/; with LFR_DOCS_SCREENSHOTS=1 they replace the ones in docs/img/ (so an
ordinary test run leaves the working tree as it found it).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from lfr.api.app import create_app
from lfr.core.config import Settings

REPO = Path(__file__).resolve().parents[2]
DOCS_IMG = REPO / "docs" / "img"
SHOTS = DOCS_IMG if os.environ.get("LFR_DOCS_SCREENSHOTS") == "1" else REPO / "test-artifacts"

TOKENS = {
    "watchlist-admin": "t-admin-for-browser-tests",
    "authorising-officer": "t-officer-for-browser-tests",
    "operator": "t-operator-for-browser-tests",
    "auditor": "t-auditor-for-browser-tests",
    "operations": "t-ops-for-browser-tests",
}
NAMES = {
    "watchlist-admin": "wl.admin",
    "authorising-officer": "Supt Khan",
    "operator": "pc-4711",
    "auditor": "auditor-1",
    "operations": "ops-1",
}
API_KEYS = [{"name": NAMES[r], "key": t, "roles": [r]} for r, t in TOKENS.items()]


def role_settings(settings_for: Callable[..., Settings], **overrides: Any) -> Settings:
    """The session's stack with one token per role, its own Redis prefix, Milvus collections and groups."""
    tag = uuid.uuid4().hex[:8]
    return settings_for(
        api={"api_keys": API_KEYS, "rate_limit_per_minute": 100_000, "rate_limit_burst": 10_000},
        milvus={"collection_prefix": f"b{tag}_"},
        alerting={"group_id": f"lfr-alerting-browser-{tag}"},
        **overrides,
    )


def headers(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[role]}"}


@dataclass
class Api:
    base_url: str
    app: FastAPI
    extra_routes: list[str] = field(default_factory=list)

    def client(self, role: str | None) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base_url, headers=headers(role) if role else {}, timeout=120.0)


@contextlib.asynccontextmanager
async def full_api(
    settings: Settings, before_start: Callable[[FastAPI], None] | None = None
) -> AsyncIterator[Api]:
    """`lfr api`'s app (lfr.api.app.create_app, every router) under uvicorn on a free loopback port."""
    app = create_app(settings)
    if before_start is not None:
        before_start(app)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, lifespan="on", log_level="warning", access_log=False, timeout_graceful_shutdown=2)
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        deadline = time.monotonic() + 60
        while not server.started:
            if task.done():
                task.result()
            assert time.monotonic() < deadline, "API did not start within 60 s"
            await asyncio.sleep(0.05)
        yield Api(f"http://127.0.0.1:{port}", app)
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, timeout=15)
        sock.close()


class Watched:
    """A Chromium page that records console errors, uncaught exceptions and failed responses."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.problems: list[str] = []
        self.failed: list[str] = []
        page.on("pageerror", lambda exc: self.problems.append(f"page error: {exc}"))
        page.on(
            "console",
            lambda msg: (
                self.problems.append(msg.text)
                if msg.type == "error" and not msg.text.startswith("Failed to load resource")
                else None
            ),
        )
        page.on("response", lambda r: self.failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)

    async def sign_in(self, url: str, role: str) -> None:
        await self.page.goto(url)
        await self.page.get_by_label("Access token").fill(TOKENS[role])
        await self.page.get_by_role("button", name="Sign in").click()
        await self.page.locator("#workspace").wait_for(state="visible")

    async def refused_sign_in(self, url: str, wrong_role: str, page_role: str) -> None:
        """A token without the page's role is turned away and the page shows none of its actions."""
        await self.page.goto(url)
        await self.page.get_by_label("Access token").fill(TOKENS[wrong_role])
        await self.page.get_by_role("button", name="Sign in").click()
        from playwright.async_api import expect

        await expect(self.page.locator("#login-error")).to_have_text(
            f"That token does not hold the {page_role} role."
        )
        assert await self.page.locator("#workspace").is_hidden()

    async def screenshot(self, name: str) -> Path:
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / f"console-{name}.png"
        await self.page.screenshot(path=str(path), full_page=True)
        return path

    def assert_clean(self, allowed_failures: tuple[str, ...] = ()) -> None:
        assert self.problems == [], f"browser console errors: {self.problems}"
        bad = [f for f in self.failed if not any(a in f for a in allowed_failures)]
        assert bad == [], f"failed requests: {bad}"


async def unlabelled_inputs(page: Any) -> list[str]:
    """Inputs without a label (accessibility); read through Playwright: the CSP forbids in-page eval."""
    out = []
    for handle in await page.query_selector_all("input:not([type=hidden]), textarea, select"):
        ident = await handle.get_attribute("id")
        if not ident or await page.query_selector(f'label[for="{ident}"]') is None:
            out.append(ident or "(no id)")
    return out
