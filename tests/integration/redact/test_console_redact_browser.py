"""The evidence redaction page of the console in a real headless Chromium against the real stack.

An officer signs in (an auditor's token is refused), uploads a group photo with a case and a reason,
follows the background job to the end, sees the tracks and the contact sheet, ticks one track, redacts
again and downloads the result: exactly that face is visible in it, and no other. A screenshot goes to
test-artifacts/console-redact.png.
"""

from __future__ import annotations

import importlib.util
import sys
import uuid
from pathlib import Path
from types import ModuleType

import pytest

from lfr.core.audit import read_all
from lfr.core.config import Settings

from .checks import Checker
from .conftest import read
from .test_shared_footage import near

pytestmark = [pytest.mark.browser, pytest.mark.integration]

TESTS = Path(__file__).resolve().parents[2]
BROWSER_TESTS = TESTS / "browser"
ARTIFACTS = TESTS.parent / "test-artifacts"
MULTI_FACE = "facenet_pytorch_samples/multi_face/multiface.jpg"
OPERATOR, AUDITOR = "op-token-redact", "aud-token-redact"


def _browser_helper(name: str) -> ModuleType:
    """tests/browser/<name>.py, imported by path: the tests folder is not a package on sys.path."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, BROWSER_TESTS / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


browser_support = _browser_helper("browser_support")
roles_support = _browser_helper("roles_support")


@pytest.fixture
def chromium() -> Path:
    return browser_support.chromium_or_skip()


async def test_officer_redacts_a_photo_keeps_one_track_and_downloads(
    chromium: Path,
    stack_settings: Settings,
    models_dir: Path,
    checker: Checker,
    face_data: Path,
    tmp_path: Path,
) -> None:
    from playwright.async_api import expect

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
    async with (
        roles_support.full_api(settings) as api,
        browser_support.launch_chromium(chromium) as browser,
    ):
        page = await browser.new_page(viewport={"width": 1280, "height": 1000}, accept_downloads=True)
        problems: list[str] = []
        page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
        await page.goto(f"{api.base_url}/console/redact.html")
        await browser_support.sign_in(page, AUDITOR)
        await expect(page.locator("#login-error")).to_contain_text("does not hold a role")
        await browser_support.sign_in(page, OPERATOR)
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
    real = [d.bbox for d in checker.reference.detect(read(photo)) if d.score >= 0.9]
    found = [d.bbox for d in checker.strong.detect(read(saved))]
    assert len([b for b in real if near(b, found)]) == 1, "exactly the kept face is visible"
    assert problems == [], problems
    actions = [e.action for e in await read_all(settings) if e.target == f"case:{case}"]
    assert actions.count("evidence.redact") == 2 and "evidence.redact.download" in actions
