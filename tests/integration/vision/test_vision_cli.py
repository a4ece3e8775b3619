"""The typer apps that cli.py mounts as ``lfr models ...`` and ``lfr bench models``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lfr.bench.cli import bench_app
from lfr.core.config import get_settings
from lfr.modelbuild.cli import app

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
    assert [c["name"] for c in cards] == ["dlib-resnet-v1", "mtcnn", "sface", "yunet"]
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
    if Path("/proc/cpuinfo").is_file():
        assert set(out["cpu_flags"]) >= {"avx2", "avx512_vnni"} and all(
            type(v) is bool for v in out["cpu_flags"].values()
        )
    assert out["detect_agreement_reference"] >= 0.95 and out["detect_agreement_reference_n"] >= 400
    assert out["detect_recall_small_faces"] >= 0.95 and out["detect_recall_small_faces_n"] >= 40


@pytest.mark.long  # quantizes, then benches: opt-in tooling, about 15 s
def test_quantize_then_bench_the_int8_card(
    monkeypatch: pytest.MonkeyPatch, models_dir: Path, faces_dir: Path, tmp_path: Path
) -> None:
    import shutil

    own = tmp_path / "models"
    shutil.copytree(models_dir, own)  # the session's folder keeps exactly the two default cards
    monkeypatch.setenv("LFR_MODELS__DIR", str(own))
    get_settings.cache_clear()
    try:
        calib = [str(faces_dir / "face_recognition_demo"), str(faces_dir / "facenet_pytorch_samples")]
        r = runner.invoke(app, ["quantize", *calib])
        assert r.exit_code == 0, r.output
        assert "dlib-resnet-v1-int8" in r.output and "LFR_MODELS__EMBEDDER=dlib-resnet-v1-int8" in r.output
        args = ["models", "--json", "--repeat", "3", "--faces-dir", str(faces_dir)]
        r = runner.invoke(bench_app, [*args, "--embedder", "dlib-resnet-v1-int8"])
        assert r.exit_code == 0, r.output
        out = json.loads(r.output.strip().splitlines()[-1])
        assert out["embedder"].startswith("dlib-resnet-v1-int8:") and out["embed_ms_per_face_b32"] > 0
        r = runner.invoke(bench_app, [*args, "--embedder", "no-such-model"])
        assert r.exit_code == 1 and "no model card named 'no-such-model'" in r.output
        r = runner.invoke(app, ["quantize", str(tmp_path / "missing")])
        assert r.exit_code == 1 and "does not exist" in r.output
    finally:
        get_settings.cache_clear()
