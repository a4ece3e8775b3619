"""The fault suite's one pipeline, started once per session (the harness is shared by every scenario)."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest


def _load_harness() -> Any:
    """Imports harness.py as ``faults_harness`` (the tests folder is not a package on sys.path)."""
    if "faults_harness" not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            "faults_harness", Path(__file__).with_name("harness.py")
        )
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["faults_harness"] = module
        spec.loader.exec_module(module)
    return sys.modules["faults_harness"]


_load_harness()


@pytest.fixture(scope="session")
async def pipeline(models_dir: Path, face_data: Path) -> AsyncIterator[Any]:
    harness = _load_harness()
    async with harness.running_pipeline(models_dir, face_data) as pipe:
        yield pipe
