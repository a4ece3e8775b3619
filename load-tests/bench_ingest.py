"""Ingest capacity, runnable without the CLI wiring: ``python load-tests/bench_ingest.py [--cameras N]``.

Without ``--cameras`` it prints the same JSON object as ``lfr bench ingest --json`` (one thread, CPU time:
``cameras_per_core``). With ``--cameras N`` it runs the production concurrency path instead: N cameras
reading the looping street video through their reader threads, the per-camera analysis tasks and the
thread pool (``--threads``, default: the CPUs this process may use), with a publisher that discards
records, and prints per-camera analysed fps and frames dropped by the drop-oldest queue. That answers
"does this pod keep up with N cameras?" on the machine it runs on. ``--[no-]motion-gating`` and ``--video``
(e.g. a fixed-camera clip from ``make_fixed_scene.py``) apply to both modes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from pathlib import Path
from typing import Any

from lfr.bench.ingest import bench_ingest, bench_video
from lfr.core.config import Settings, get_settings
from lfr.core.shared_data import shared_faces_dir
from lfr.ingest.cameras import Camera
from lfr.ingest.pipeline import IngestPipeline
from lfr.ingest.publisher import CropPublisher
from lfr.ingest.service import IngestWorker, usable_cpus


class _DiscardingProducer:
    """Acknowledges every record at once: the broker is not what this measures."""

    class _Client:
        async def fetch_all_metadata(self) -> None:
            return None

        def force_metadata_update(self) -> asyncio.Future[bool]:
            fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
            fut.set_result(True)
            return fut

    client = _Client()

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def send(self, topic: str, value: bytes, key: bytes) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut


async def run_cameras(settings: Settings, video: Path, cameras: int, seconds: float, threads: int) -> dict:
    pipeline = IngestPipeline.from_settings(settings)
    cams = [
        Camera(camera_id=f"bench-{i}", deployment_id="bench", url=str(video), loop=True)
        for i in range(cameras)
    ]
    publisher = CropPublisher(settings, producer_factory=lambda s: _DiscardingProducer())  # type: ignore[arg-type,return-value]
    key = ("bench-key", os.urandom(32))

    async def keys() -> tuple[str, bytes]:
        return key

    worker = IngestWorker(settings, cams, pipeline, keys, publisher, threads=threads)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    await asyncio.sleep(seconds)
    status = worker.status()
    stop.set()
    await task
    target = settings.ingest.analyse_fps
    per_camera = {
        d["camera_id"]: {
            "analysed_fps": d["analysed_fps"],
            "input_fps": d["input_fps"],
            "dropped_queue": d["dropped_queue"],
            "frames_gated": d["frames_gated"],
        }
        for d in status
    }
    worst = min((d["analysed_fps"] for d in status), default=0.0)
    return {
        "cameras": cameras,
        "threads": threads,
        "seconds": seconds,
        "analyse_fps_target": target,
        "worst_camera_analysed_fps": worst,
        "keeps_up": worst >= 0.9 * target,
        "crops": pipeline.totals.crops,
        "motion_gating": settings.ingest.motion_gating,
        "frames_gated": pipeline.totals.gated,
        "per_camera": per_camera,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--faces-dir", type=Path, default=shared_faces_dir())
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--cameras", type=int, default=0, help="run N cameras concurrently instead")
    ap.add_argument("--threads", type=int, default=0, help="analysis threads (default: usable CPUs)")
    ap.add_argument(
        "--motion-gating",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="override ingest.motion_gating (default: the setting)",
    )
    ap.add_argument("--video", type=Path, default=None, help="footage to loop instead of the street video")
    args = ap.parse_args()
    settings = get_settings()
    if args.cameras <= 0:
        result = bench_ingest(
            settings,
            seconds=args.seconds,
            faces_dir=args.faces_dir,
            motion_gating=args.motion_gating,
            video=args.video,
        )
        print(json.dumps(result))
        return
    if args.motion_gating is not None:
        ingest = settings.ingest.model_copy(update={"motion_gating": args.motion_gating})
        settings = settings.model_copy(update={"ingest": ingest})
    video = args.video or bench_video(args.faces_dir)
    threads = args.threads or usable_cpus()
    print(json.dumps(asyncio.run(run_cameras(settings, video, args.cameras, args.seconds, threads))))


if __name__ == "__main__":
    main()
