"""`lfr bench redact` end to end on a short cut of the street video: it pins itself to one core, so it runs
in its own process here, and its JSON must carry the settings that decide its figures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .footage import cut_clip

pytestmark = pytest.mark.integration

FRAMES = 12


def test_bench_redact_reports_both_sizes_and_the_settings_behind_them(
    face_data: Path, models_dir: Path, tmp_path: Path
) -> None:
    clip = tmp_path / "street-12.mp4"
    cut_clip(face_data / "facenet_pytorch_samples/video/video.mp4", clip, FRAMES)
    env = {
        **os.environ,
        "LFR_DATA_DIR": str(tmp_path / "data"),
        "LFR_MODELS__DIR": str(models_dir),
    }
    done = subprocess.run(
        [sys.executable, "-m", "lfr.cli", "bench", "redact", "--json", "--video", str(clip)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout)
    # The default redaction mode (docs/redaction.md, Which to use) and the knobs that change its speed.
    assert out["detector"].startswith("yunet:") and out["seed_detector"].startswith("mtcnn:")
    assert out["yunet_reliable_face_px"] == 20 and out["seed_interval_s"] == 1.0
    assert out["target_fps_1080p"] == 12.5 and out["meets_target"] == (out["1080p"]["fps"] >= 12.5)
    for label, (w, h) in {"1080p": (1920, 1080), "720p": (1280, 720)}.items():
        r = out[label]
        assert (r["width"], r["height"], r["frames"]) == (w, h, FRAMES), r
        assert r["fps"] > 0 and r["analyse_ms_per_frame"] > 0 and r["render_ms_per_frame"] > 0
        # Pedestrians are in every frame of the clip: every frame gets a mask, the first is detected on.
        assert r["frames_touched"] == FRAMES and r["frames_detected"] >= 1 and r["tracks"] >= 1, r
