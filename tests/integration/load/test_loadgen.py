"""The load generator end to end for a few seconds: a private embedded stack, the real `lfr ingest`,
`lfr embed` and `lfr alert` processes, one camera step on the street video and one crop-injection step,
and the report with its plots.

It checks that the run measured what the report claims: faces analysed by the embedder, alerts with a
capture-to-alert latency, lag and per-process CPU sampled, every plot written. The figures themselves are
not judged here (a busy machine makes them noise); `make load` and docs/performance.md are where they live.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration]

REPO = Path(__file__).resolve().parents[3]
PLOTS = ("throughput.png", "lag.png", "latency_cdf.png", "cpu.png", "rss.png")


@pytest.mark.long
def test_loadgen_runs_and_reports(face_data: Path, models_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    env = {
        **os.environ,
        "LFR_SHARED_FACES": str(face_data),
        "LFR_MODELS__DIR": str(models_dir),
        # The memory broker starts faster than the S3-backed one, and the run is thrown away.
        "LFR_STACK__BROKER_STORAGE": "memory",
        "LFR_STACK__MILVUS": "lite",
    }
    cmd = [
        sys.executable,
        str(REPO / "load-tests" / "loadgen.py"),
        "--cameras", "1",
        "--crop-rates", "8",
        "--seconds", "4",
        "--warmup", "3",
        "--filler", "20",
        "--out", str(out),
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    assert [r["kind"] for r in results] == ["cameras", "crops"]
    cams, crops = results
    assert cams["cameras_reporting"] == 1
    assert cams["camera_analysed_fps_min"] > 0, cams
    assert crops["faces_analysed_per_s"] > 0, crops
    # The injected crops are the enrolled people's faces among others: alerts must come, each with a latency.
    assert crops["alert_records"] > 0 and crops["alert_p99_ms"] is not None, crops
    assert 0 < crops["alert_p50_ms"] < 60_000
    assert {"embedder-1", "alerting", "stack:kafka"} <= set(crops["cpu_percent"]), crops["cpu_percent"]
    assert "ingest" in cams["cpu_percent"], cams["cpu_percent"]

    report = (out / "report.md").read_text()
    assert "| 1 cam, 1 emb |" in report and "| 8 crops/s, 1 emb |" in report
    for name in PLOTS:
        png = out / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert f"]({name})" in report
    raw = json.loads((out / "results.json").read_text())
    assert len(raw["rows"]) >= 3 and any("lag:embedder" in r for r in raw["rows"])
