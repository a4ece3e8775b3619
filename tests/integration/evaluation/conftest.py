"""Fixtures shared by the `lfr eval` command tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lfr.core.config import get_settings


@pytest.fixture
def cli_env(models_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    """A CLI runner whose settings read the built models and keep data under the test's own folder."""
    monkeypatch.setenv("LFR_MODELS__DIR", str(models_dir))
    monkeypatch.setenv("LFR_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("LFR_CONFIG", raising=False)
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()
