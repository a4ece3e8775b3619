"""Why and how late each crop leaves ingest, per ingest setting: ``python load-tests/bench_crop_delay.py``.

Capture-to-alert latency starts in ingest: a crop can only be searched once ingest decides to send it, and
best-shot selection and the unpassed-track fallback both decide late on purpose (a better face is held until
the track's interval passes; a track whose face never passed the quality gate sent its best face only when
it ended). This runs the production :class:`IngestPipeline` frame by frame over the looping street video on
the video's own clock, so the figures do not depend on how busy the machine is, and for each variant of the
ingest settings prints one JSON object per line:

- ``crops`` and ``by_reason``: crops by why they were sent (``best_shot``, ``held``, ``refresh``,
  ``unpassed_live``, ``unpassed_end``); ``fallback_crops`` as ``lfr bench ingest`` counts them;
- ``held_ms``: per reason, p50 / p90 / p99 / max of the stream time from the face's frame to the frame
  that sent it (the decision delay; analysis and the broker come on top, measured by ``loadgen.py``);
- ``tracks_eligible``, ``tracks_eligible_searched``, ``track_coverage``, ``crops_per_track_histogram``:
  the coverage figures of ``lfr bench ingest`` (docs/accuracy.md, "Track coverage");
- ``mean_quality_score``: per reason, the mean best-shot score of the faces sent (what a fresher face
  costs in quality).

Each analysed frame is detected once and the detections are reused on every loop and variant (the looped
clip repeats the same frames), so a sweep of many variants costs little more than one::

    python load-tests/bench_crop_delay.py --media-seconds 120 \\
        --variant '{"unpassed_send_after_s": null}' --variant '{"unpassed_send_after_s": 0.6}'

A variant is a JSON object of ``ingest.*`` settings; the defaults run first.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from lfr.bench.ingest import BENCH_FPS, bench_video
from lfr.core.config import Settings, get_settings
from lfr.ingest.cameras import Camera
from lfr.ingest.crops import CropKey
from lfr.ingest.pipeline import WIRE_SEND_REASON, IngestPipeline
from lfr.ingest.sources import Frame, Sampler
from lfr.vision import load_detector
from lfr.vision.detectors.base import Detection, Detector

REASONS = tuple(WIRE_SEND_REASON)  # best_shot, held, refresh, unpassed_live, unpassed_end


class CachedDetector:
    """The real detector, asked once per clip frame; ``key`` names the frame the next call is for."""

    def __init__(self, inner: Detector) -> None:
        self.inner = inner
        self.key = -1
        self.cache: dict[int, list[Detection]] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def detect(self, image: np.ndarray) -> list[Detection]:
        if self.key not in self.cache:
            self.cache[self.key] = self.inner.detect(image)
        return self.cache[self.key]


def read_clip(video: Path) -> tuple[list[np.ndarray], float]:
    """Every frame of the clip (decoded once) and its frame rate."""
    cap = cv2.VideoCapture(str(video), cv2.CAP_FFMPEG)
    src_fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    frames: list[np.ndarray] = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(img)
    cap.release()
    if not frames:
        raise SystemExit(f"no frames in {video}")
    return frames, float(src_fps)


def schedule(n_clip: int, src_fps: float, media_seconds: float, fps: float) -> list[tuple[float, int]]:
    """(stream time, clip frame index) of every analysed frame of the looping clip, as ingest samples it."""
    sampler = Sampler(fps)
    due = ((n / src_fps, n % n_clip) for n in range(int(media_seconds * src_fps)))
    return [(t, i) for t, i in due if sampler.due(t)]


def _pcts(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    ms = np.asarray(values) * 1000.0
    return {
        "n": len(values),
        "p50": round(float(np.percentile(ms, 50)), 1),
        "p90": round(float(np.percentile(ms, 90)), 1),
        "p99": round(float(np.percentile(ms, 99)), 1),
        "max": round(float(ms.max()), 1),
    }


def run_variant(
    settings: Settings, detector: CachedDetector, frames: dict[int, np.ndarray], plan: list[tuple[float, int]]
) -> dict[str, Any]:
    pipeline = IngestPipeline.from_settings(settings, detector=detector)  # type: ignore[arg-type]
    camera = Camera(camera_id="delay-cam", deployment_id="delay", url="file://clip")
    key = CropKey("delay-key", os.urandom(32))
    held: dict[str, list[float]] = {r: [] for r in REASONS}
    quality: dict[str, list[float]] = {r: [] for r in REASONS}
    for seq, (t, index) in enumerate(plan, start=1):
        detector.key = index
        frame = Frame(camera.camera_id, seq, int(t * 1000), t, t, frames[index])
        for out in pipeline.process(camera, frame, key).crops:
            held[out.reason].append(out.held_s)
            quality[out.reason].append(out.crop.quality.score)
    for out in pipeline.finish(camera, key).crops:
        held[out.reason].append(out.held_s)
        quality[out.reason].append(out.crop.quality.score)
    totals = pipeline.totals.as_dict()
    return {
        "crops": totals["crops"],
        "by_reason": {r: len(v) for r, v in held.items()},
        "held_ms": {r: _pcts(v) for r, v in held.items() if v},
        "mean_quality_score": {r: round(float(np.mean(v)), 4) for r, v in quality.items() if v},
        "all_crops_held_ms": _pcts([x for v in held.values() for x in v]),
        "fallback_crops": totals["fallback_crops"],
        "tracks": totals["tracks"],
        "tracks_eligible": totals["tracks_eligible"],
        "tracks_eligible_searched": totals["tracks_eligible_searched"],
        "track_coverage": totals["track_coverage"],
        "crops_per_track_histogram": totals["crops_per_track_histogram"],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--media-seconds", type=float, default=120.0, help="video time to play (the clip loops)")
    ap.add_argument("--video", type=Path, default=None, help="footage (default: the street video)")
    ap.add_argument("--fps", type=float, default=BENCH_FPS, help="frames analysed per second")
    ap.add_argument(
        "--variant", action="append", default=[], help='ingest settings as JSON, e.g. {"x": 1}; repeatable'
    )
    args = ap.parse_args(argv)
    cv2.setNumThreads(1)
    base = get_settings()
    one = base.model_copy(
        update={"models": base.models.model_copy(update={"intra_op_threads": 1, "inter_op_threads": 1})}
    )
    video = args.video or bench_video()
    clip, src_fps = read_clip(video)
    plan = schedule(len(clip), src_fps, args.media_seconds, args.fps)
    frames = {i: clip[i] for _, i in plan}  # only the analysed ones are kept
    clip_s = len(clip) / src_fps
    del clip
    detector = CachedDetector(load_detector(one))
    for text in ["{}", *args.variant]:
        overrides = json.loads(text)
        ingest = one.ingest.model_validate({**one.ingest.model_dump(), **overrides})
        settings = one.model_copy(update={"ingest": ingest})
        result = run_variant(settings, detector, frames, plan)
        row = {
            "variant": overrides,
            "media_seconds": args.media_seconds,
            "clip_seconds": round(clip_s, 2),
            "unpassed_send_after_s": ingest.unpassed_send_after_s,
            "best_shot_min_interval_s": ingest.best_shot_min_interval_s,
            **result,
        }
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
