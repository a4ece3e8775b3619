"""`lfr bench ingest`: how many 1080p cameras, analysed at 5 fps, one CPU core sustains.

Why measured this way: ingest is the part of LFR that scales with cameras, and its cost is decode (every
frame of a compressed stream must be decoded, sampled or not) plus detection, alignment, quality,
best-shot and sealing on the sampled frames. The benchmark runs exactly the production pipeline
(:class:`IngestPipeline`) single-threaded (one FFmpeg decode thread, one ONNX Runtime thread, OpenCV
single-threaded) on the street video ``facenet_pytorch_samples/video/video.mp4`` (1920x1080, 25 fps)
played in a loop, and divides the video time processed by the CPU time spent:
``cameras_per_core = media seconds / CPU seconds``. Only the broker round trip is left out (the producer
runs on the event loop; its CPU cost per crop is small and crops are few per person).
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import Any

import cv2

from lfr.core.config import Settings
from lfr.core.serde import encode
from lfr.core.shared_data import shared_faces_dir
from lfr.ingest.cameras import Camera
from lfr.ingest.crops import CropKey
from lfr.ingest.pipeline import IngestPipeline
from lfr.ingest.sources import Frame, Sampler

BENCH_VIDEO = Path("facenet_pytorch_samples") / "video" / "video.mp4"
BENCH_FPS = 5.0


class BenchError(RuntimeError):
    """The benchmark cannot run (no footage); the message says where it looked."""


def bench_video(faces_dir: Path | None = None) -> Path:
    video = (faces_dir or shared_faces_dir()) / BENCH_VIDEO
    if not video.is_file():
        raise BenchError(
            f"benchmark footage {video} not found: pass --faces-dir pointing at shared/data/faces "
            "or set LFR_SHARED_FACES"
        )
    return video


def bench_ingest(
    settings: Settings,
    seconds: float = 20.0,
    faces_dir: Path | None = None,
    motion_gating: bool | None = None,
    video: Path | None = None,
) -> dict[str, Any]:
    """Run the ingest pipeline single-threaded on the looping bench video for ``seconds`` of wall time.

    ``motion_gating`` overrides ``ingest.motion_gating``; ``video`` replaces the street video (for example
    footage of a fixed camera, where gating can pay).
    """
    if video is not None and not Path(video).is_file():
        raise BenchError(f"video {video} not found")
    video = Path(video) if video is not None else bench_video(faces_dir)
    cv2.setNumThreads(1)
    ingest = {"analyse_fps": BENCH_FPS}
    if motion_gating is not None:
        ingest["motion_gating"] = motion_gating
    one = settings.model_copy(
        update={
            "models": settings.models.model_copy(update={"intra_op_threads": 1, "inter_op_threads": 1}),
            "ingest": settings.ingest.model_copy(update=ingest),
        }
    )
    pipeline = IngestPipeline.from_settings(one)
    camera = Camera(camera_id="bench-cam", deployment_id=settings.deployment_id or "bench", url=str(video))
    key = CropKey("bench-key", os.urandom(32))
    sampler = Sampler(BENCH_FPS)

    def open_video() -> cv2.VideoCapture:
        return cv2.VideoCapture(str(video), cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, 1])

    cap = open_video()
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    width, height = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    frames_in = analysed = crops = crop_bytes = 0
    seq = 0
    index = 0
    media_offset = 0.0
    decode_cpu = analyse_cpu = 0.0
    faces_per_frame: list[int] = []
    wall0, cpu0 = time.perf_counter(), time.process_time()
    try:
        while time.perf_counter() - wall0 < seconds:
            c0 = time.process_time()
            if not cap.grab():
                cap.release()
                cap = open_video()
                media_offset += index / fps
                index = 0
                continue
            t = media_offset + index / fps
            index += 1
            frames_in += 1
            if not sampler.due(t):
                decode_cpu += time.process_time() - c0
                continue
            ok, image = cap.retrieve()
            c1 = time.process_time()
            decode_cpu += c1 - c0
            if not ok:
                continue
            seq += 1
            frame = Frame(camera.camera_id, seq, int(time.time() * 1000), time.monotonic(), t, image)
            result = pipeline.process(camera, frame, key)
            for out in result.crops:
                crop_bytes += len(encode(out.crop))
            crops += len(result.crops)
            analysed += 1
            faces_per_frame.append(result.faces)
            analyse_cpu += time.process_time() - c1
        final = pipeline.finish(camera, key)
        crops += len(final.crops)
        crop_bytes += sum(len(encode(out.crop)) for out in final.crops)
    finally:
        cap.release()
    wall = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0
    media_s = frames_in / fps
    totals = pipeline.totals.as_dict()
    return {
        "video": str(BENCH_VIDEO) if video.name == BENCH_VIDEO.name else str(video),
        "motion_gating": one.ingest.motion_gating,
        "frames_gated": totals["frames_gated"],
        "resolution": f"{width}x{height}",
        "source_fps": round(fps, 2),
        "analyse_fps": BENCH_FPS,
        "threads": 1,
        "detector": pipeline.detector.model_id,
        "cameras_per_core": round(media_s / cpu, 2) if cpu > 0 else None,
        "cameras_per_core_wall": round(media_s / wall, 2) if wall > 0 else None,
        "crops_per_track": totals["crops_per_track_median"],
        "crops_per_track_max": totals["crops_per_track_max"],
        "best_shot_max_per_track": settings.ingest.best_shot_max_per_track,
        "media_seconds": round(media_s, 2),
        "cpu_seconds": round(cpu, 2),
        "wall_seconds": round(wall, 2),
        "frames_in": frames_in,
        "frames_analysed": analysed,
        "decode_ms_per_input_frame": round(decode_cpu / max(frames_in, 1) * 1000, 2),
        "analyse_ms_per_analysed_frame": round(analyse_cpu / max(analysed, 1) * 1000, 2),
        "detect_ms_per_analysed_frame": round(pipeline.totals.detect_s / max(analysed, 1) * 1000, 2),
        "faces_per_analysed_frame": round(statistics.fmean(faces_per_frame), 2) if faces_per_frame else 0.0,
        "faces": totals["faces"],
        "rejected_quality": totals["rejected_quality"],
        "tracks": totals["tracks"],
        "tracks_without_crop": totals["tracks_without_crop"],
        "crops": crops,
        "crops_per_analysed_frame": round(crops / max(analysed, 1), 3),
        "mean_crop_bytes": round(crop_bytes / max(crops, 1)),
        "crops_per_track_histogram": totals["crops_per_track_histogram"],
        "tracks_eligible": totals["tracks_eligible"],
        "tracks_eligible_searched": totals["tracks_eligible_searched"],
        "track_coverage": totals["track_coverage"],
        "fallback_crops": totals["fallback_crops"],
    }
