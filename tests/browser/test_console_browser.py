"""The operator console in a real headless Chromium against the real stack.

An officer signs in with a token, opens a deployment, sees an alert appear within 2 s of its hit being
produced, compares the probe crop with the watchlist image and confirms; the decision must then be on
lfr.adjudications.v1 and in the audit log. A screenshot of the alert view goes to
test-artifacts/console-alert.png.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from alerting_support import (
    AUDITOR_TOKEN,
    OFFICER,
    OPERATOR_TOKEN,
    AlertTail,
    FakeWatchlist,
    HitMaker,
    HitProducer,
    alerting_running,
    api_running,
    face_jpeg,
    settings_with,
)
from playwright.async_api import expect

from lfr.core import topics
from lfr.core.audit import read_all
from lfr.core.config import Settings
from lfr.core.serde import decode
from lfr.v1.adjudication_pb2 import Adjudication, Outcome

from .browser_support import sign_in
from .roles_support import Watched

pytestmark = [pytest.mark.browser, pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"


async def _images_loaded(page: Any, *selectors: str, timeout_s: float = 10.0) -> None:
    """Polls from Python: the console's CSP forbids the in-page eval that wait_for_function needs."""
    deadline = time.monotonic() + timeout_s
    for sel in selectors:
        while not await page.eval_on_selector(sel, "e => e.complete && e.naturalWidth > 0"):
            assert time.monotonic() < deadline, f"{sel} did not load"
            await asyncio.sleep(0.05)


async def test_operator_sees_alert_within_2s_and_confirms_it(
    stack_settings: Settings, browser: object
) -> None:
    settings = settings_with(stack_settings)
    dep = f"console-{uuid.uuid4().hex[:6]}"
    maker = HitMaker(settings, jpeg=face_jpeg(7))
    async with (
        alerting_running(settings),
        api_running(settings, FakeWatchlist()) as api,
        HitProducer(settings) as producer,
    ):
        page = await browser.new_page(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
        watched = Watched(page)
        problems, failed = watched.problems, watched.failed

        await page.goto(f"{api.base_url}/console/")
        await sign_in(page, "wrong-token")
        await expect(page.locator("#login-error")).to_contain_text("not accepted")
        await sign_in(page, AUDITOR_TOKEN)
        await expect(page.locator("#login-error")).to_contain_text("does not hold the operator role")
        problems.clear()  # the refused sign-in logs a 401 on purpose

        await sign_in(page, OPERATOR_TOKEN)
        await page.get_by_label("Deployment ID").fill(dep)
        await page.get_by_role("button", name="Open deployment").click()
        await expect(page.locator("#conn-status")).to_have_text("Live")
        assert await page.evaluate("sessionStorage.getItem('lfr.console.token')") == OPERATOR_TOKEN
        assert await page.evaluate("localStorage.length") == 0

        hit = await maker.hit(dep, "s-browser", "crop-b1", camera_id="cam-gate-3", score=0.912, threshold=0.6)
        t0 = time.monotonic()
        await producer.send([hit])
        item = page.locator("#alert-list li[data-alert-id]")
        await item.first.wait_for(state="visible", timeout=5000)
        shown_after = time.monotonic() - t0
        assert shown_after < 2.0, f"alert took {shown_after:.2f}s to appear in the console"
        aid = await item.first.get_attribute("data-alert-id")
        assert aid

        await item.first.get_by_role("button").click()
        await _images_loaded(page, "#probe-img", "#reference-img")
        await expect(page.locator("#f-subject")).to_contain_text("Person s-browser")
        assert (await page.text_content("#f-score")) == "0.912"
        assert (await page.text_content("#f-threshold")) == "0.600"
        assert (await page.text_content("#f-cameras")) == "cam-gate-3"
        assert (await page.text_content("#f-status")) == "Pending decision"

        # Accessible markup: every field has a label, every button has text.
        unlabeled = await page.evaluate(
            """[...document.querySelectorAll('input, textarea')]
                .filter(e => !document.querySelector(`label[for="${e.id}"]`)).map(e => e.id)"""
        )
        assert unlabeled == []
        assert await page.evaluate(
            "[...document.querySelectorAll('button')].every(b => b.textContent.trim().length > 0)"
        )

        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "console-alert.png"), full_page=True)

        async with AlertTail(settings, topics.ADJUDICATIONS, from_beginning=False) as decisions:
            await page.get_by_label("Note (optional)").fill("face and scar match")
            await page.get_by_role("button", name="Confirm", exact=True).click()
            await expect(page.locator("#decision-status")).to_have_text("Recorded: Confirmed match.")
            await page.wait_for_selector(f'#alert-list li[data-alert-id="{aid}"][data-status="confirmed"]')
            assert await page.get_by_role("button", name="Reject").is_disabled()
            await decisions.wait_until(
                lambda: any(decode(Adjudication, v).alert_id == aid for _, v in decisions.records),
                10,
                "the adjudication on lfr.adjudications.v1",
            )
            decision = next(
                d for d in (decode(Adjudication, v) for _, v in decisions.records) if d.alert_id == aid
            )
        await expect(page.locator("#d-confirmed")).to_have_text("1")
        await page.screenshot(path=str(ARTIFACTS / "console-confirmed.png"), full_page=True)
        await page.close()

    assert decision.outcome == Outcome.OUTCOME_MATCH and decision.officer == OFFICER
    assert decision.note == "face and scar match" and decision.deployment_id == dep
    audit = [e for e in await read_all(settings) if e.action == "alert.adjudicate" and e.target == aid]
    assert len(audit) == 1 and audit[0].actor == OFFICER and audit[0].details["outcome"] == "match"
    assert problems == [], f"browser console errors: {problems}"
    # Only the refused token and the optional deployments list (another service's route) may fail.
    allowed = ("/api/v1/deployments", "/favicon.ico")
    assert [f for f in failed if not (f.startswith("401 ") or f.endswith(allowed))] == []
    print(f"\nconsole: alert shown {shown_after * 1000:.0f} ms after its hit was produced")
