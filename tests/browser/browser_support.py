"""What every browser test shares: headless Chromium launched with the same flags, and the console's sign-in.

The redaction page's test (tests/integration/redact) imports this file by path: the tests folder is not a
package on sys.path.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium_or_skip() -> Path:
    """The system Chromium, or the test skips (with the command that installs it)."""
    if not CHROMIUM.exists():
        reason = f"Chromium not found at {CHROMIUM}: `make browser-deps` (apt-get install -y chromium)"
        print(f"SKIP: {reason}")
        pytest.skip(reason)
    return CHROMIUM


@contextlib.asynccontextmanager
async def launch_chromium(chromium: Path) -> AsyncIterator[Any]:
    """A headless Chromium browser, closed on the way out."""
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(chromium), headless=True, args=FLAGS)
        try:
            yield browser
        finally:
            await browser.close()


async def sign_in(page: Any, token: str) -> None:
    """Types the token into the page's sign-in form and submits it."""
    await page.get_by_label("Access token").fill(token)
    await page.get_by_role("button", name="Sign in").click()
