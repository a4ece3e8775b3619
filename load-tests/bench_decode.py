"""OpenCV vs PyAV decoding of H.264 files: ``python load-tests/bench_decode.py [--repeats N]``.

Why this exists: the ingest worker decodes every camera with ``cv2.VideoCapture`` (FFmpeg backend,
``lfr.ingest.sources``), grabbing every frame and retrieving (converting to BGR) only the frames it
analyses. PyAV wraps the same FFmpeg libraries with explicit packet/frame control, so the question is
whether it decodes faster or copes better with damaged input. This script measures, instead of assuming:

* speed: ms per *input* frame (median over repeats, wall and process CPU time) on a 1080p and a 360p
  H.264 file for five ways of decoding (``cv2_read``, ``cv2_grab_retrieve5``, ``av_all``,
  ``av_threads_auto``, ``av_convert5``). Everything runs with ``cv2.setNumThreads(1)`` and one FFmpeg
  decode thread, except ``av_threads_auto`` (FFmpeg frame+slice threading with an automatic thread count).
* robustness: each decoder reads a truncated copy and a copy with zeroed bytes in the middle, of both the
  MP4 and a raw Annex-B H.264 remux (closer to what arrives over RTSP: no container index). Each attempt
  runs in a forked child with a timeout, so a hang is reported rather than suffered. Besides the loops
  above, ``cv2_grab_retry`` (retry a ``False`` grab) and ``av_tolerant`` (skip a packet that raises) show
  what each library recovers when the caller does not stop at the first error.

Prints one JSON object on stdout. RTSP itself is not exercised: that needs an RTSP server (e.g. mediamtx).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import av
import cv2

from lfr.core.shared_data import shared_faces_dir

SHARED_FACES = shared_faces_dir()
VIDEOS = {
    "street_1080p": SHARED_FACES / "facenet_pytorch_samples" / "video" / "video.mp4",
    "hamilton_360p": SHARED_FACES / "face_recognition_demo" / "video" / "short_hamilton_clip.mp4",
}
ANALYSE_EVERY = 5  # 25 fps input analysed at 5 fps, as the ingest worker does
ROBUSTNESS_TIMEOUT_S = 15.0


@dataclass
class Progress:
    """Frames decoded and converted so far; kept outside the decoder so a probe can report how far a
    decoder got before it raised."""

    frames: int = 0
    converted: int = 0


Decoder = Callable[[Path, Progress], None]


def _cv2_open(path: Path) -> cv2.VideoCapture:
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, 1])
    if not cap.isOpened():
        raise OSError(f"cv2.VideoCapture could not open {path}")
    return cap


def cv2_read(path: Path, prog: Progress) -> None:
    """``read()`` every frame: decode + BGR conversion of all frames; stop at the first ``False``."""
    cap = _cv2_open(path)
    try:
        while True:
            ok, _img = cap.read()
            if not ok:
                break
            prog.frames += 1
            prog.converted += 1
    finally:
        cap.release()


def cv2_grab_retrieve5(path: Path, prog: Progress) -> None:
    """``grab()`` every frame, ``retrieve()`` every 5th, stop at the first ``False`` grab: what
    ``lfr.ingest.sources`` does at 5 fps (a ``False`` grab ends a file and reconnects a stream)."""
    cap = _cv2_open(path)
    try:
        while cap.grab():
            if prog.frames % ANALYSE_EVERY == 0:
                ok, _img = cap.retrieve()
                prog.converted += int(ok)
            prog.frames += 1
    finally:
        cap.release()


def cv2_grab_retry(path: Path, prog: Progress) -> None:
    """Like ``cv2_grab_retrieve5`` but a ``False`` grab is retried, up to 25 in a row (robustness only):
    ``grab()`` also returns ``False`` for a packet that fails to decode, and the capture goes on after it."""
    cap = _cv2_open(path)
    misses = 0
    try:
        while misses < 25:
            if not cap.grab():
                misses += 1
                continue
            misses = 0
            if prog.frames % ANALYSE_EVERY == 0:
                ok, _img = cap.retrieve()
                prog.converted += int(ok)
            prog.frames += 1
    finally:
        cap.release()


def _convert(frame: av.VideoFrame, prog: Progress, every: int) -> None:
    if prog.frames % every == 0:
        frame.to_ndarray(format="bgr24")
        prog.converted += 1
    prog.frames += 1


def _av_decode(path: Path, prog: Progress, threaded: bool, every: int, tolerant: bool = False) -> None:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if threaded:
            stream.thread_type = "AUTO"  # frame + slice threads, thread_count 0 = FFmpeg picks (CPU count)
        else:
            stream.thread_count = 1
        if not tolerant:
            for frame in container.decode(stream):
                _convert(frame, prog, every)
            return
        # what a production loop would do: skip a packet that fails to decode and carry on
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.error.FFmpegError:
                continue
            for frame in frames:
                _convert(frame, prog, every)


def av_all(path: Path, prog: Progress) -> None:
    """PyAV, one decode thread, every frame converted with ``to_ndarray(format="bgr24")``; the plain
    ``container.decode()`` loop, which raises on the first packet that fails to decode."""
    _av_decode(path, prog, threaded=False, every=1)


def av_threads_auto(path: Path, prog: Progress) -> None:
    """PyAV with ``thread_type = "AUTO"`` (multi-threaded decode), every frame converted."""
    _av_decode(path, prog, threaded=True, every=1)


def av_convert5(path: Path, prog: Progress) -> None:
    """PyAV, one decode thread, every frame decoded but only every 5th converted to BGR."""
    _av_decode(path, prog, threaded=False, every=ANALYSE_EVERY)


def av_tolerant(path: Path, prog: Progress) -> None:
    """PyAV, one decode thread, per-packet decode that skips packets raising an error (robustness only)."""
    _av_decode(path, prog, threaded=False, every=ANALYSE_EVERY, tolerant=True)


SPEED_METHODS: dict[str, Decoder] = {
    "cv2_read": cv2_read,
    "cv2_grab_retrieve5": cv2_grab_retrieve5,
    "av_all": av_all,
    "av_threads_auto": av_threads_auto,
    "av_convert5": av_convert5,
}
ROBUSTNESS_METHODS: dict[str, Decoder] = {
    "cv2_read": cv2_read,
    "cv2_grab_retrieve5": cv2_grab_retrieve5,
    "cv2_grab_retry": cv2_grab_retry,
    "av_all": av_all,
    "av_tolerant": av_tolerant,
}


def bench(path: Path, repeats: int) -> dict[str, Any]:
    """Time every speed method on ``path``; repeats are interleaved across methods so a burst of load
    from other processes hits all methods rather than one."""
    wall: dict[str, list[float]] = {m: [] for m in SPEED_METHODS}
    cpu: dict[str, list[float]] = {m: [] for m in SPEED_METHODS}
    last: dict[str, Progress] = {}
    for method in SPEED_METHODS.values():
        method(path, Progress())  # warm-up: page cache, codec init
    for _ in range(repeats):
        for name, method in SPEED_METHODS.items():
            prog = Progress()
            t0, c0 = time.perf_counter(), time.process_time()
            method(path, prog)
            wall[name].append((time.perf_counter() - t0) * 1000 / prog.frames)
            cpu[name].append((time.process_time() - c0) * 1000 / prog.frames)
            last[name] = prog
    return {
        name: {
            "wall_ms_per_frame": round(statistics.median(wall[name]), 3),
            "cpu_ms_per_frame": round(statistics.median(cpu[name]), 3),
            "wall_ms_runs": [round(x, 3) for x in wall[name]],
            "frames": last[name].frames,
            "converted": last[name].converted,
        }
        for name in SPEED_METHODS
    }


def _child(method: Decoder, path: Path, conn: Connection) -> None:
    prog = Progress()
    raised = None
    try:
        method(path, prog)
    except Exception as exc:  # recorded, not handled: that is the point of the probe
        raised = f"{type(exc).__name__}: {exc}"[:160]
    conn.send({"raised": raised, "frames": prog.frames})
    conn.close()


def probe(method: Decoder, path: Path) -> dict[str, Any]:
    """Run ``method`` on ``path`` in a forked child; report frames (before any exception), the exception
    and whether it hung past the timeout."""
    ctx = mp.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(method, path, send))
    t0 = time.perf_counter()
    proc.start()
    send.close()
    result: dict[str, Any] = {"hung": False}
    try:
        if recv.poll(ROBUSTNESS_TIMEOUT_S):
            result.update(recv.recv())
        else:
            result["hung"] = True
            proc.kill()
    except EOFError:  # child died without reporting (a crash in native code)
        result.update(raised="child died", frames=None)
    proc.join(5)
    if proc.exitcode not in (0, None) and not result["hung"]:
        result["exit_code"] = proc.exitcode
    result["seconds"] = round(time.perf_counter() - t0, 2)
    return result


def remux_annexb(src: Path, dst: Path) -> None:
    """Copy the H.264 packets of ``src`` into a raw Annex-B stream (no container index, like RTSP)."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", format="h264") as out:
        istream = inp.streams.video[0]
        ostream = out.add_stream_from_template(istream)
        for packet in inp.demux(istream):
            if packet.dts is None:
                continue
            packet.stream = ostream
            out.mux(packet)


def damaged_copies(src: Path, workdir: Path) -> dict[str, Path]:
    """Truncated (first 60 % of bytes) and zeroed-middle (64 KiB at 50 %) copies of the MP4 and raw H.264."""
    raw = workdir / "video.h264"
    remux_annexb(src, raw)
    out: dict[str, Path] = {}
    for kind, path in (("mp4", src), ("h264", raw)):
        data = path.read_bytes()
        trunc = workdir / f"trunc60.{kind}"
        trunc.write_bytes(data[: int(len(data) * 0.6)])
        mid = len(data) // 2
        zeroed = workdir / f"zeroed.{kind}"
        zeroed.write_bytes(data[:mid] + bytes(65536) + data[mid + 65536 :])
        out[f"{kind}_intact"] = path
        out[f"{kind}_truncated_60pct"] = trunc
        out[f"{kind}_zeroed_64k_mid"] = zeroed
    return out


def versions() -> dict[str, Any]:
    build = cv2.getBuildInformation()
    cv2_ffmpeg = {}
    for lib in ("avcodec", "avformat", "avutil", "swscale"):
        for line in build.splitlines():
            if line.strip().startswith(f"{lib}:"):
                cv2_ffmpeg[f"lib{lib}"] = line.split("(")[-1].rstrip(")").strip()
    return {
        "opencv": cv2.__version__,
        "opencv_ffmpeg_libs": cv2_ffmpeg,
        "av": av.__version__,
        "av_ffmpeg": getattr(av, "ffmpeg_version_info", None),
        "av_ffmpeg_libs": {k: ".".join(map(str, v)) for k, v in av.library_versions.items()},
    }


def defaults(path: Path) -> dict[str, Any]:
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    cv2_threads = cap.get(cv2.CAP_PROP_N_THREADS)
    cap.release()
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        av_type, av_count = str(stream.thread_type), stream.thread_count
    return {
        "cv2_capture_decode_threads": cv2_threads,
        "cv2_getNumThreads_before_set": cv2.getNumThreads(),
        "av_thread_type": av_type,
        "av_thread_count": av_count,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per method and video (median)")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-robustness", action="store_true")
    args = parser.parse_args()

    report: dict[str, Any] = {"versions": versions(), "defaults": defaults(VIDEOS["street_1080p"])}
    cv2.setNumThreads(1)
    report["settings"] = {
        "repeats": args.repeats,
        "cv2_setNumThreads": cv2.getNumThreads(),
        "cpus": len(os.sched_getaffinity(0)),
        "loadavg_at_start": os.getloadavg(),
    }
    speed: dict[str, Any] = {}
    for name, path in [] if args.skip_speed else VIDEOS.items():
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            info = {"resolution": f"{stream.width}x{stream.height}", "fps": float(stream.average_rate or 0)}
        info["methods"] = bench(path, args.repeats)
        speed[name] = info
    report["speed"] = speed

    if not args.skip_robustness:
        with tempfile.TemporaryDirectory(prefix="bench_decode_", dir="/tmp") as tmp:
            cases = damaged_copies(VIDEOS["street_1080p"], Path(tmp))
            report["robustness"] = {
                case: {m: probe(fn, p) for m, fn in ROBUSTNESS_METHODS.items()} for case, p in cases.items()
            }
    report["settings"]["loadavg_at_end"] = os.getloadavg()
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
