"""The typer apps that cli.py mounts as ``lfr models ...`` and ``lfr bench models``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lfr.core.config import get_settings
from lfr.vision.cli import app, bench_app

pytestmark = pytest.mark.shared_data


runner = CliRunner()


@pytest.fixture
def env_models(monkeypatch: pytest.MonkeyPatch, models_dir: Path) -> Iterator[Path]:
    monkeypatch.setenv("LFR_MODELS__DIR", str(models_dir))
    get_settings.cache_clear()
    yield models_dir
    get_settings.cache_clear()


def test_build_and_list(env_models: Path) -> None:
    r = runner.invoke(app, ["build"])
    assert r.exit_code == 0, r.output
    assert "dlib-resnet-v1" in r.output and "mtcnn" in r.output
    r = runner.invoke(app, ["list", "--json"])
    assert r.exit_code == 0, r.output
    cards = json.loads(r.output)
    assert [c["name"] for c in cards] == ["dlib-resnet-v1", "mtcnn"]
    assert cards[0]["threshold"] == 0.6
    r = runner.invoke(app, ["list"])
    assert "L2 threshold 0.6" in r.output


def test_list_on_empty_dir_says_how_to_build(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LFR_MODELS__DIR", str(tmp_path))
    get_settings.cache_clear()
    try:
        r = runner.invoke(app, ["list"])
    finally:
        get_settings.cache_clear()
    assert r.exit_code == 0 and "lfr models build" in r.output


def test_bench_models_prints_figures(env_models: Path, faces_dir: Path) -> None:
    r = runner.invoke(bench_app, ["models", "--json", "--repeat", "3", "--faces-dir", str(faces_dir)])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output.strip().splitlines()[-1])
    for key in ("detect_ms_640x480", "detect_ms_1920x1080", "embed_ms_per_face_b1", "embed_ms_per_face_b32"):
        assert isinstance(out[key], float) and out[key] > 0
    assert out["detect_recall_video"] >= 0.95
