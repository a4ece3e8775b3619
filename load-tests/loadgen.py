"""Load generator: cameras or injected crops against the real pipeline, every service its own process.

Two kinds of step, run one after another on one private stack (lfrload.rig):

- ``--cameras 1,2,3``: N cameras looping real footage (default: the 1080p street video of
  ``facenet_pytorch_samples``) through one real ``lfr ingest`` process, analysed at ``--fps``;
- ``--crop-rates 20,40,80``: real face chips injected onto ``lfr.crops.v1`` at each rate, spread over
  ``--site-cameras`` simulated cameras (the recognition path alone: embed, search, hit, alert).

``--embedders 1,2`` repeats every step with that many ``lfr embed`` processes. The faces of the footage (or,
for crops, of the first photos of the shared LFW set) are enrolled with ``--filler`` random subjects, so
alerts happen. Writes ``report.md``, PNG plots and ``results.json`` to ``--out``; prints the results as JSON.

    python load-tests/loadgen.py --cameras 1,2 --seconds 60 --out test-artifacts/load
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lfrload.inject import jpegs
from lfrload.report import write_report
from lfrload.rig import Rig, footage_faces, photo_faces
from lfrload.steps import Feed, Step, run_steps

from lfr.core.config import get_settings
from lfr.core.shared_data import shared_faces_dir
from lfr.modelbuild import build_models

STREET_VIDEO = Path("facenet_pytorch_samples") / "video" / "video.mp4"


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cameras", type=_ints, default=[], help="camera steps, e.g. 1,2,3")
    ap.add_argument("--crop-rates", type=_floats, default=[], help="crop injection steps, crops/s")
    ap.add_argument("--embedders", type=_ints, default=[1], help="embedder processes per step, e.g. 1,2")
    ap.add_argument("--seconds", type=float, default=60.0, help="measured seconds per step")
    ap.add_argument("--warmup", type=float, default=15.0, help="seconds left out at the start of each step")
    ap.add_argument("--fps", type=float, default=5.0, help="frames analysed per camera per second")
    ap.add_argument(
        "--video", type=Path, default=None, help="footage for the cameras (default: street video)"
    )
    ap.add_argument("--enrol", type=int, default=4, help="real faces enrolled (from the footage or photos)")
    ap.add_argument("--filler", type=int, default=1000, help="random subjects added to the watchlist")
    ap.add_argument(
        "--site-cameras", type=int, default=1000, help="camera ids the injected crops spread over"
    )
    ap.add_argument("--photos", type=int, default=64, help="photos whose faces feed injected crops")
    ap.add_argument("--max-minutes", type=float, default=30.0, help="refuse a plan expected to run longer")
    ap.add_argument("--stop-on-fail", action="store_true", help="stop at the first step not sustained")
    ap.add_argument("--out", type=Path, default=Path("test-artifacts/load"))
    ap.add_argument("--prefix", default="", help="prefix of the report's file names")
    ap.add_argument("--data-dir", type=Path, default=None, help="stack data dir (default: a temporary one)")
    args = ap.parse_args(argv)
    if not args.cameras and not args.crop_rates:
        ap.error("give --cameras and/or --crop-rates")
    return args


def plan(args: argparse.Namespace) -> list[Step]:
    steps = []
    for emb in args.embedders:
        steps += [
            Step("cameras", cameras=n, embedders=emb, seconds=args.seconds, warmup_s=args.warmup)
            for n in args.cameras
        ]
        steps += [
            Step("crops", rate=r, embedders=emb, seconds=args.seconds, warmup_s=args.warmup)
            for r in args.crop_rates
        ]
    return steps


def estimate_s(steps: list[Step]) -> float:
    """Wall time of a plan: set-up, then per step its warm-up and measurement plus priming and draining."""
    return 90.0 + sum(s.warmup_s + s.seconds + 25.0 for s in steps)


def source_fps(video: Path) -> float:
    import cv2

    cap = cv2.VideoCapture(str(video))
    try:
        return float(cap.get(cv2.CAP_PROP_FPS) or 25.0)
    finally:
        cap.release()


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    steps = plan(args)
    expected_min = estimate_s(steps) / 60
    if expected_min > args.max_minutes:
        log(f"the plan would take about {expected_min:.0f} min, over --max-minutes {args.max_minutes:g}")
        return 2
    base = get_settings()
    build_models(base.models_dir)
    video = args.video or shared_faces_dir() / STREET_VIDEO
    if args.cameras and not video.is_file():
        log(f"footage {video} not found: pass --video or set LFR_SHARED_FACES")
        return 2
    feed = Feed(video=video if args.cameras else None, site_cameras=args.site_cameras, fps=args.fps)
    if args.cameras:
        feed.source_fps = source_fps(video)
    rig = Rig(base, data_dir=args.data_dir)
    t0 = time.time()
    try:
        log("starting a private stack...")
        settings = rig.up()
        if args.cameras:
            faces = footage_faces(settings, video)
        else:
            shared = shared_faces_dir()
            roots = [shared / "lfw_pairs_dev" / "images", shared / "deepface_testset"]
            faces = photo_faces(settings, roots, args.photos)
        if not faces:
            log("no faces found to enrol")
            return 2
        feed.chips = jpegs([c for c, _ in faces])
        feed.chip_size = int(faces[0][0].shape[0])
        log(f"enrolling {min(args.enrol, len(faces))} real face(s) and {args.filler} random subjects...")
        asyncio.run(rig.enrol_and_start(faces, args.enrol, args.filler))
        ingest_env = {"LFR_INGEST__ANALYSE_FPS": str(args.fps)}
        rig._group().env.update(ingest_env)
        run = asyncio.run(run_steps(rig, feed, steps, args.stop_on_fail, log))
    finally:
        rig.close()
    notes = [
        f"{len(faces)} real face(s) found, {min(args.enrol, len(faces))} enrolled, {args.filler} random "
        f"subjects; footage: {video if args.cameras else 'LFW / deepface photos (injected crops)'}",
        f"models: detector {base.models.detector}, embedder {base.models.embedder}; "
        f"crops topic partitions {base.kafka.crops_partitions}",
        f"wall time {time.time() - t0:.0f} s",
    ]
    command = "python load-tests/loadgen.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    path = write_report(run, args.out, command, notes, args.prefix)
    log(f"report: {path}")
    print(json.dumps(run["results"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
