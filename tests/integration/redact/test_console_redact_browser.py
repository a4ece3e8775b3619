"""The evidence redaction page of the console in a real headless Chromium against the real stack.

An officer signs in (an auditor's token is refused), uploads a group photo with a case and a reason,
follows the background job to the end, sees the tracks and the contact sheet, ticks one track, redacts
again and downloads the result: exactly that face is visible in it, and no other. A screenshot goes to
test-artifacts/console-redact.png.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import uvicorn

from lfr.core.audit import read_all
from lfr.core.config import Settings

from .checks import Checker
from .conftest import read
from .test_shared_footage import near

pytestmark = [pytest.mark.browser, pytest.mark.integration]

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
MULTI_FACE = "facenet_pytorch_samples/multi_face/multiface.jpg"
OPERATOR, AUDITOR = "op-token-redact", "aud-token-redact"


@contextlib.asynccontextmanager
async def api_server(settings: Settings) -> AsyncIterator[str]:
    """``lfr api``'s own app (lfr.api.app.create_app) on a free loopback port."""
    from lfr.api.app import create_app

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(settings), log_level="warning", access_log=False))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert not task.done() and time.monotonic() < deadline, "API did not start"
            await asyncio.sleep(0.05)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, timeout=15)
        sock.close()


@pytest.fixture
def chromium() -> Path:
    if not CHROMIUM.exists():
        reason = f"Chromium not found at {CHROMIUM}: `make browser-deps` (apt-get install -y chromium)"
        print(f"SKIP: {reason}")
        pytest.skip(reason)
    return CHROMIUM


async def test_officer_redacts_a_photo_keeps_one_track_and_downloads(
    chromium: Path,
    stack_settings: Settings,
    models_dir: Path,
    checker: Checker,
    face_data: Path,
    tmp_path: Path,
) -> None:
    from playwright.async_api import async_playwright, expect

    data = stack_settings.model_dump()
    data["redis"]["key_prefix"] = f"lfr-redact-ui-{uuid.uuid4().hex[:6]}:"
    data["models"]["dir"] = models_dir
    data["api"]["api_keys"] = [
        {"name": "pc-redact", "key": OPERATOR, "roles": ["operator"]},
        {"name": "aud-2", "key": AUDITOR, "roles": ["auditor"]},
    ]
    settings = Settings(**data)
    case = f"OP-ui-{uuid.uuid4().hex[:4]}"
    photo = face_data / MULTI_FACE
    async with api_server(settings) as base, async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(chromium), headless=True, args=FLAGS)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 1000}, accept_downloads=True)
            problems: list[str] = []
            page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
            await page.goto(f"{base}/console/redact.html")
            await page.get_by_label("Access token").fill(AUDITOR)
            await page.get_by_role("button", name="Sign in").click()
            await expect(page.locator("#login-error")).to_contain_text("does not hold a role")
            await page.get_by_label("Access token").fill(OPERATOR)
            await page.get_by_role("button", name="Sign in").click()
            await expect(page.locator("#who")).to_have_text("Signed in as pc-redact")

            await page.get_by_label("Footage or photo").set_input_files(str(photo))
            await page.get_by_label("Case reference").fill(case)
            await page.get_by_label("Reason").fill("press appeal: bystanders covered")
            await page.get_by_role("button", name="Redact", exact=True).click()
            await expect(page.locator("#job-status")).to_have_text("Done", timeout=120_000)
            boxes = page.locator("#tracks input[type=checkbox]")
            assert await boxes.count() >= 4
            assert await page.eval_on_selector("#sheet", "e => e.complete && e.naturalWidth > 0")
            await expect(page.locator("#report-summary")).to_contain_text("kept none")

            await page.get_by_label("Keep track 1 ", exact=False).check()
            await page.get_by_role("button", name="Redact again keeping the ticked tracks").click()
            await expect(page.locator("#job-status")).to_have_text("Done", timeout=120_000)
            await expect(page.locator("#report-summary")).to_contain_text("kept 1,")
            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "console-redact.png"), full_page=True)
            async with page.expect_download() as info:
                await page.get_by_role("link", name="Download the redacted file").click()
            saved = tmp_path / "kept.jpg"
            await (await info.value).save_as(str(saved))
        finally:
            await browser.close()
    real = [d.bbox for d in checker.reference.detect(read(photo)) if d.score >= 0.9]
    found = [d.bbox for d in checker.strong.detect(read(saved))]
    assert len([b for b in real if near(b, found)]) == 1, "exactly the kept face is visible"
    assert problems == [], problems
    actions = [e.action for e in await read_all(settings) if e.target == f"case:{case}"]
    assert actions.count("evidence.redact") == 2 and "evidence.redact.download" in actions
