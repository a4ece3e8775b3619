"""`lfr bench models`: detection and embedding latency (one thread, as deployed) and detection recall.

Why: cameras-per-core is the figure operators size ingest with, so detection and embedding latency on the
target machine must be one command away, together with the detector's recall on the shared test video, so
a faster configuration cannot silently lose faces.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path

from lfr.core.config import Settings
from lfr.core.shared_data import shared_faces_dir
from lfr.modelbuild import build_models

VIDEO_LABELS = Path("tests") / "integration" / "vision" / "fixtures" / "video_faces.json"
PHOTO_LABELS = VIDEO_LABELS.with_name("photo_faces.json")


INT8_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")


def cpu_int8_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> dict[str, bool]:
    """Which of the instruction sets that decide int8 speed this CPU has (empty where /proc is absent).

    Why in the output: an int8 card runs 2.4 times faster than float with AVX-512 VNNI and about as fast as
    float with AVX2 alone (docs/models.md), so a latency figure means little without them.
    """
    try:
        text = cpuinfo.read_text()
    except OSError:
        return {}
    flags = next(
        (line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), []
    )
    return {f: f in flags for f in INT8_FLAGS}


def _median_ms(fn: Callable[[], object], repeat: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000.0)
    return round(statistics.median(times), 2)


def run_model_bench(settings: Settings, repeat: int = 15, faces_dir: Path | None = None) -> dict[str, object]:
    """Median latencies (one ORT thread, one OpenCV thread) and the detector's recall on the test video."""
    import cv2
    import numpy as np

    from lfr.modelbuild.evaluate import (
        detection_recall,
        iter_frames,
        load_frame_labels,
        load_photo_labels,
        read_frames,
        reference_agreement,
        reference_cascade,
        small_face_canvases,
    )
    from lfr.vision.pipeline import load_detector, load_embedder

    cv2.setNumThreads(1)
    one = settings.model_copy(
        update={"models": settings.models.model_copy(update={"intra_op_threads": 1, "inter_op_threads": 1})}
    )
    build_models(one.models_dir)
    detector = load_detector(one)
    embedder = load_embedder(one)
    faces = faces_dir or shared_faces_dir()
    video = faces / "facenet_pytorch_samples" / "video" / "video.mp4"
    result: dict[str, object] = {
        "detector": detector.model_id,
        "embedder": embedder.model_id,
        "cpu_flags": cpu_int8_flags(),
    }
    if video.is_file():
        frame = read_frames(video, [0])[0]
    else:
        # No shared data: a synthetic frame still measures the pyramid cost (recall is then not measured).
        frame = np.random.default_rng(0).integers(0, 256, (1080, 1920, 3), dtype=np.uint8)
    small = cv2.resize(frame, (640, 480), interpolation=cv2.INTER_AREA)
    result["detect_ms_640x480"] = _median_ms(lambda: detector.detect(small), repeat)
    result["detect_ms_1920x1080"] = _median_ms(lambda: detector.detect(frame), repeat)
    rng = np.random.default_rng(1)
    chips = [rng.integers(0, 256, (embedder.chip_size,) * 2 + (3,), dtype=np.uint8) for _ in range(32)]
    result["embed_ms_per_face_b1"] = _median_ms(lambda: embedder.embed(chips[:1]), repeat)
    result["embed_ms_per_face_b32"] = round(
        _median_ms(lambda: embedder.embed(chips), max(3, repeat // 3)) / 32, 2
    )
    labels = Path(__file__).resolve().parents[3] / VIDEO_LABELS
    if video.is_file() and labels.is_file():
        _, frames = load_frame_labels(labels)
        imgs = read_frames(video, [f.frame for f in frames])
        found, total = detection_recall(
            detector, [imgs[f.frame] for f in frames], [f.boxes for f in frames], min_width=40
        )
        result["detect_recall_video"] = round(found / total, 4) if total else None
        result["detect_recall_faces"] = total
        if one.detector.first_level_thresholds:
            # The frames nobody labelled: are the faces the reference cascade finds there still found?
            labelled = {f.frame for f in frames}
            unlabelled = (img for i, img in iter_frames(video) if i not in labelled)
            kept, total = reference_agreement(detector, load_detector(reference_cascade(one)), unlabelled)
            result["detect_agreement_reference"] = round(kept / total, 4) if total else None
            result["detect_agreement_reference_n"] = total
    else:
        result["detect_recall_video"] = None
    photo_labels = Path(__file__).resolve().parents[3] / PHOTO_LABELS
    if faces.is_dir() and photo_labels.is_file():
        # Held out from tuning: the labelled photos shrunk to small faces on a 1080p canvas.
        images, boxes = small_face_canvases(load_photo_labels(photo_labels, faces))
        found, total = detection_recall(detector, images, boxes, min_width=40)
        result["detect_recall_small_faces"] = round(found / total, 4) if total else None
        result["detect_recall_small_faces_n"] = total
    return result
