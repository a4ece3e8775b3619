"""Browser tests reuse the alerting integration helpers (loaded as ``alerting_support``) and one Chromium."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from .browser_support import chromium_or_skip, launch_chromium

SUPPORT = Path(__file__).resolve().parents[1] / "integration" / "alerting" / "support.py"

if "alerting_support" not in sys.modules:
    _spec = importlib.util.spec_from_file_location("alerting_support", SUPPORT)
    assert _spec is not None and _spec.loader is not None
    _module = importlib.util.module_from_spec(_spec)
    sys.modules["alerting_support"] = _module
    _spec.loader.exec_module(_module)


@pytest.fixture
def chromium() -> Path:
    return chromium_or_skip()


@pytest.fixture
async def browser(chromium: Path) -> AsyncIterator[Any]:
    async with launch_chromium(chromium) as b:
        yield b
