"""The vision runtime and the services running it load no model build, evaluation or benchmark code."""

from __future__ import annotations

import json
import subprocess
import sys

RUNTIME = [
    "lfr.vision",
    "lfr.vision.pipeline",
    "lfr.vision.photo_embedding",
    "lfr.vision.detectors.mtcnn",
    "lfr.vision.detectors.yunet",
    "lfr.vision.embedders.onnx_embedder",
    "lfr.embedder.service",
    "lfr.ingest.service",
    "lfr.retro.gallery",
    "lfr.redact.engine",
]
TOOLING = ("lfr.modelbuild", "lfr.evaluation", "lfr.bench")


def test_runtime_imports_no_tooling() -> None:
    # A fresh interpreter: this test process has long since imported the tooling through other tests.
    code = (
        "import importlib, json, sys\n"
        f"for m in {RUNTIME!r}: importlib.import_module(m)\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.startswith({TOOLING!r}))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_settings_load_without_the_detectors() -> None:
    """core.config composes the detectors' settings modules, which must not pull in ONNX Runtime."""
    code = (
        "import sys\n"
        "from lfr.core.config import load_settings\n"
        "s = load_settings()\n"
        "print(s.detector.yunet.score_threshold, s.detector.pnet_threshold(0))\n"
        "print(sorted(m for m in sys.modules if m in ('onnxruntime', 'lfr.vision.detectors.mtcnn',"
        " 'lfr.vision.pipeline')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["0.6 0.8", "[]"]
