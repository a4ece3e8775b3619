"""``lfr bench redact``: whole-redaction throughput (decode, detect, track, mask, encode) on one core.

The process pins itself to one CPU and runs ONNX Runtime and the codecs single-threaded, so the figure is
per core: a machine with N cores redacts about N files at that rate side by side. The 720p run uses the
same footage scaled down (its smallest faces then fall below the minimum size, so it detects a little
less); scaling happens before the clock starts.
"""

from __future__ import annotations

import os
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from lfr.core.config import Settings
from lfr.redact.engine import FaceFinder, render_video
from lfr.redact.media import decode, probe

SIZES = {"1080p": (1920, 1080), "720p": (1280, 720)}


class BenchError(RuntimeError):
    pass


def pin_one_core() -> int | None:
    """Pin this process to one CPU (the last it may use); None where the OS cannot."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    cpu = max(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return cpu


def scaled_copy(src: Path, dst: Path, width: int, height: int) -> None:
    """``src`` re-encoded at ``width`` x ``height`` (near-lossless), same frames and timing, no audio."""
    info = probe(src)
    with av.open(str(dst), "w", format="mp4") as out:
        rate = Fraction(info.fps).limit_denominator(1001)
        vs = out.add_stream("libx264", rate=rate)
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        vs.options = {"preset": "ultrafast", "crf": "12"}
        for i, frame in enumerate(decode(src)):
            f = frame.reformat(width=width, height=height, format="yuv420p")
            f.pts, f.time_base = i, 1 / rate
            for p in vs.encode(f):
                out.mux(p)
        for p in vs.encode(None):
            out.mux(p)


def run_one(settings: Settings, finder: FaceFinder, path: Path, work: Path) -> dict[str, Any]:
    t0 = time.perf_counter()
    analysis = finder.analyse_video(path)
    t1 = time.perf_counter()
    stats = render_video(
        settings,
        path,
        work / "out.mp4",
        analysis,
        {t.track_id for t in analysis.tracks},
        settings.redact.style,
    )
    t2 = time.perf_counter()
    return {
        "width": analysis.width,
        "height": analysis.height,
        "frames": analysis.frames,
        "fps": round(analysis.frames / (t2 - t0), 2),
        "realtime_factor": round(analysis.frames / (t2 - t0) / (analysis.fps or 25.0), 3),
        "analyse_ms_per_frame": round((t1 - t0) * 1000 / analysis.frames, 1),
        "render_ms_per_frame": round((t2 - t1) * 1000 / analysis.frames, 1),
        "detection_stride": analysis.stride,
        "frames_detected": analysis.detected_frames,
        "frames_seeded": analysis.seed_frames,
        "tracks": len(analysis.tracks),
        "frames_touched": stats.frames_touched,
    }


def run_redact_bench(settings: Settings, video: Path | None) -> dict[str, Any]:
    if video is None or not Path(video).is_file():
        raise BenchError(
            "no footage to benchmark: pass --video PATH (1080p), or put the shared face data beside the "
            "checkout (facenet_pytorch_samples/video/video.mp4)"
        )
    cpu = pin_one_core()
    finder = FaceFinder(settings)
    blank = np.zeros((1080, 1920, 3), np.uint8)
    finder.detector.detect(blank)  # load and warm the sessions
    if finder.seed is not None:
        finder.seed.detect(blank)
    r = settings.redact
    result: dict[str, Any] = {
        "source": Path(video).name,
        "pinned_cpu": cpu,
        "style": r.style,
        "min_face_px": r.min_face_px,
        "detect_interval_s": r.detect_interval_s,
        "x264_preset": r.x264_preset,
        "detector": finder.detector.model_id,
        "seed_detector": finder.seed.model_id if finder.seed is not None else None,
        "seed_interval_s": r.seed_interval_s if finder.seed is not None else None,
        # YuNet's frame is shrunk by this / min_face_px (docs/redaction.md, Speed); other cards ignore it.
        "yunet_reliable_face_px": r.yunet_reliable_face_px,
    }
    with tempfile.TemporaryDirectory(prefix="lfr-bench-redact-") as tmp:
        work = Path(tmp)
        for label, (w, h) in SIZES.items():
            clip = work / f"{label}.mp4"
            scaled_copy(Path(video), clip, w, h)
            result[label] = run_one(settings, finder, clip, work)
    result["target_fps_1080p"] = 12.5
    result["meets_target"] = result["1080p"]["fps"] >= 12.5
    return result
