"""Camera readers: one OpenCV (FFmpeg backend) capture per camera, each in its own thread.

Why a thread per camera: ``VideoCapture.open``/``grab`` block (an unreachable RTSP host blocks for the
open timeout, a stalled stream for the read timeout) and decoding is CPU work that releases the GIL; in a
thread of its own a dead or slow camera can only stall itself, never the event loop or other cameras.

Why ``grab`` every frame but ``retrieve`` only sampled ones: compressed video must be decoded frame by
frame, but the colour conversion to BGR (``retrieve``) is only paid for frames that will be analysed, at
``analyse_fps`` (default 5).

Why drop the OLDEST frame when the queue is full: live recognition wants the newest picture of the crowd;
an analyser that has fallen behind should skip ahead, not work through a backlog of stale frames. Drops
are counted per camera so under-provisioned pods are visible.

Files are paced at their native frame rate (they stand in for cameras in demos and tests) and can loop.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from lfr.core.config import Settings
from lfr.core.retry import backoff_delay, wait_or_timeout
from lfr.core.timeutil import now_ms
from lfr.ingest import metrics as m
from lfr.ingest.cameras import Camera

log = logging.getLogger(__name__)

DEFAULT_FILE_FPS = 25.0
OPEN_TIMEOUT_MS = 10_000
READ_TIMEOUT_MS = 10_000
MAX_CONSECUTIVE_BAD = 50  # a stream that yields only garbage is reconnected
# Failed grabs skipped before a file counts as ended or a stream as dead: a damaged packet fails one grab
# and decoding resumes after it (measured: 101 of 105 frames recovered past a 64 KiB damaged stretch, 48
# without skipping; load-tests/bench_decode.py).
FILE_GRAB_RETRIES = 25
STREAM_GRAB_RETRIES = 3
RATE_WINDOW_S = 5.0


@dataclass(frozen=True)
class Frame:
    """A sampled frame. ``stream_s`` is media time for files and monotonic time for live streams, so
    tracker ages are measured on the video's own clock."""

    camera_id: str
    seq: int
    captured_ms: int
    mono: float
    stream_s: float
    image: np.ndarray


class Capture(Protocol):
    """The part of ``cv2.VideoCapture`` a reader uses (fakes implement it in tests)."""

    def isOpened(self) -> bool: ...

    def grab(self) -> bool: ...

    def retrieve(self) -> tuple[bool, Any]: ...

    def get(self, prop: int) -> float: ...

    def release(self) -> None: ...


CaptureFactory = Callable[[Camera], Capture]


def open_capture(camera: Camera, decode_threads: int = 1) -> Capture:
    """Open a camera with OpenCV's FFmpeg backend (V4L2 for devices), with open and read timeouts.

    RTSP transport (e.g. TCP) comes from ``OPENCV_FFMPEG_CAPTURE_OPTIONS`` (the Helm chart sets it).
    """
    params = [
        cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
        OPEN_TIMEOUT_MS,
        cv2.CAP_PROP_READ_TIMEOUT_MSEC,
        READ_TIMEOUT_MS,
    ]
    if camera.kind == "device":
        return cv2.VideoCapture(camera.source, cv2.CAP_ANY, params)
    params += [cv2.CAP_PROP_N_THREADS, decode_threads]
    return cv2.VideoCapture(str(camera.source), cv2.CAP_FFMPEG, params)


class FrameQueue:
    """Thread-safe bounded queue that drops the oldest frame when full (and counts it)."""

    def __init__(self, maxlen: int, on_put: Callable[[], None] | None = None) -> None:
        self._items: deque[Frame] = deque()
        self._maxlen = maxlen
        self._lock = threading.Lock()
        self.dropped = 0
        self.on_put = on_put

    def put(self, frame: Frame) -> Frame | None:
        """Queue ``frame``; return the frame dropped to make room, if any."""
        dropped = None
        with self._lock:
            if len(self._items) >= self._maxlen:
                dropped = self._items.popleft()
                self.dropped += 1
            self._items.append(frame)
        if self.on_put is not None:
            self.on_put()
        return dropped

    def get_nowait(self) -> Frame | None:
        with self._lock:
            return self._items.popleft() if self._items else None

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


class RateMeter:
    """Events per second over the last few seconds (for status; Prometheus rates come from counters)."""

    def __init__(self, window_s: float = RATE_WINDOW_S) -> None:
        self.window_s = window_s
        self._times: deque[float] = deque()
        self._lock = threading.Lock()
        self._started = time.monotonic()

    def mark(self, t: float | None = None) -> None:
        t = time.monotonic() if t is None else t
        with self._lock:
            self._times.append(t)
            self._trim(t)

    def _trim(self, now: float) -> None:
        while self._times and self._times[0] < now - self.window_s:
            self._times.popleft()

    def rate(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._trim(now)
            if not self._times:
                return 0.0
            span = max(min(self.window_s, now - self._started), 1e-3)
            return len(self._times) / span


@dataclass
class CameraHealth:
    """Counters and state of one camera, written by its reader thread and the analyser."""

    camera_id: str
    state: str = "starting"  # starting, connecting, connected, backoff, ended, stopped, not_live
    connected: bool = False
    frames_in: int = 0
    frames_sampled: int = 0
    frames_analysed: int = 0
    frames_gated: int = 0
    dropped_queue: int = 0
    corrupt: int = 0
    oversized: int = 0
    not_live: int = 0
    reconnects: int = 0
    loops: int = 0
    last_frame_mono: float | None = None
    last_error: str = ""
    input_rate: RateMeter = field(default_factory=RateMeter)
    analysed_rate: RateMeter = field(default_factory=RateMeter)

    def snapshot(self, now: float | None = None) -> dict[str, Any]:
        now = time.monotonic() if now is None else now
        age = None if self.last_frame_mono is None else round(now - self.last_frame_mono, 2)
        return {
            "camera_id": self.camera_id,
            "state": self.state,
            "connected": self.connected,
            "input_fps": round(self.input_rate.rate(now), 2),
            "analysed_fps": round(self.analysed_rate.rate(now), 2),
            "last_frame_age_s": age,
            "reconnects": self.reconnects,
            "frames_in": self.frames_in,
            "frames_analysed": self.frames_analysed,
            "frames_gated": self.frames_gated,
            "dropped_queue": self.dropped_queue,
            "corrupt": self.corrupt,
            "oversized": self.oversized,
            "not_live": self.not_live,
            "loops": self.loops,
            "last_error": self.last_error,
        }


class Sampler:
    """Picks frames at ``fps`` from a stream by stream time; every frame when the source is slower."""

    def __init__(self, fps: float) -> None:
        self.period = 1.0 / fps
        self._next: float | None = None

    def due(self, t: float) -> bool:
        if self._next is None or t >= self._next - 1e-3:
            # Schedule from the previous due time so the rate does not drift; jump ahead after a gap.
            base = t if self._next is None or t - self._next > self.period else self._next
            self._next = base + self.period
            return True
        return False


class CameraSource:
    """Reads one camera in a daemon thread into a bounded drop-oldest queue, reconnecting on failure."""

    def __init__(
        self,
        camera: Camera,
        settings: Settings,
        capture_factory: CaptureFactory | None = None,
        pace_files: bool = True,
        seed: int | None = None,
    ) -> None:
        self.camera = camera
        self.settings = settings
        threads = settings.ingest.decode_threads
        self._factory = capture_factory or (lambda cam: open_capture(cam, threads))
        self.pace_files = pace_files
        self.health = CameraHealth(camera.camera_id)
        self.queue = FrameQueue(settings.ingest.queue_frames, self._notify)
        self.max_pixels = settings.detector.max_image_pixels
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._rng = random.Random(seed)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready: asyncio.Event | None = None
        self._seq = 0
        self._labels = camera.camera_id

    # ---- lifecycle --------------------------------------------------------------------------------------

    def start(self) -> None:
        try:
            self._loop = asyncio.get_running_loop()
            self._ready = asyncio.Event()
        except RuntimeError:
            self._loop = None
        self._thread = threading.Thread(target=self._run, name=f"cam-{self.camera.camera_id}", daemon=True)
        self._thread.start()

    def request_stop(self) -> None:
        """Ask the reader to stop without waiting (stop many cameras at once, then join them)."""
        self._stop.set()
        self._notify()

    def stop(self, join_s: float = 2.0) -> None:
        """Stop and wait up to ``join_s``; a thread blocked inside FFmpeg is left to its read timeout."""
        self.request_stop()
        if self._thread is not None:
            self._thread.join(max(join_s, 0.0))
        if self.health.state != "ended":
            self.health.state = "stopped"
        self.health.connected = False
        m.CAMERA_CONNECTED.labels(self._labels).set(0)

    @property
    def finished(self) -> bool:
        """The reader will produce no more frames (file ended without loop, or stopped)."""
        return self._thread is not None and not self._thread.is_alive()

    def _notify(self) -> None:
        if self._loop is not None and self._ready is not None and not self._loop.is_closed():
            try:
                self._loop.call_soon_threadsafe(self._ready.set)
            except RuntimeError:  # loop closed between the check and the call
                pass

    async def next_frame(self) -> Frame | None:
        """The oldest queued frame, waiting for one; None once the reader has finished and nothing is left."""
        assert self._ready is not None, "start() must be called inside the event loop"
        while True:
            frame = self.queue.get_nowait()
            if frame is not None:
                return frame
            if self.finished or self._stop.is_set():
                return None
            self._ready.clear()
            frame = self.queue.get_nowait()
            if frame is not None:
                return frame
            await wait_or_timeout(self._ready, 1.0)

    def note_analysed(self, gated: bool = False) -> None:
        self.health.frames_analysed += 1
        self.health.analysed_rate.mark()
        m.FRAMES_ANALYSED.labels(self._labels).inc()
        if gated:
            self.health.frames_gated += 1
            m.FRAMES_GATED.labels(self._labels).inc()

    # ---- reader thread ----------------------------------------------------------------------------------

    def _run(self) -> None:
        ing = self.settings.ingest
        attempt = 0
        first = True
        while not self._stop.is_set():
            if not first:
                self.health.reconnects += 1
                m.CAMERA_RECONNECTS.labels(self._labels).inc()
            first = False
            self.health.state = "connecting"
            outcome = "failed"
            try:
                outcome = self._read_stream()
            except Exception as exc:  # a broken backend must not kill the thread silently
                self.health.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("camera %s reader error: %s", self.camera.camera_id, self.health.last_error)
            self.health.connected = False
            m.CAMERA_CONNECTED.labels(self._labels).set(0)
            if outcome == "ended" or self._stop.is_set():
                self.health.state = "ended" if outcome == "ended" else "stopped"
                return
            if outcome == "delivered":
                attempt = 0  # it worked for a while: start the backoff from the beginning
            attempt += 1
            delay = backoff_delay(attempt, ing.reconnect_initial_s, ing.reconnect_max_s, self._rng.random)
            self.health.state = "backoff"
            log.info(
                "camera %s (%s) unavailable (%s); retry in %.1f s",
                self.camera.camera_id,
                self.camera.safe_url,
                self.health.last_error or "no frames",
                delay,
            )
            self._stop.wait(delay)

    def _read_stream(self) -> str:
        """Read until the stream fails or ends: 'ended', 'delivered' (frames came, then failure), 'failed'."""
        cam = self.camera
        if cam.kind == "file":
            if not Path(str(cam.source)).is_file():
                self.health.last_error = "video file not found"
                return "failed"
        cap = self._factory(cam)
        delivered = False
        try:
            if not cap.isOpened():
                self.health.last_error = "could not open stream"
                return "failed"
            is_file = cam.kind == "file"
            native = cap.get(cv2.CAP_PROP_FPS) if is_file else 0.0
            fps = native if native and 0 < native <= 240 else DEFAULT_FILE_FPS
            sampler = Sampler(cam.fps(self.settings))
            t_open = time.monotonic()
            media_offset = 0.0  # stream time carried across file loops so tracks age correctly
            index = 0
            bad_run = 0
            failed_grabs = 0
            while not self._stop.is_set():
                if is_file and self.pace_files:
                    wait = t_open + index / fps - time.monotonic()
                    if wait > 0 and self._stop.wait(wait):
                        break
                if not cap.grab():
                    # A damaged packet fails one grab; the stream goes on after it. Skip a few before
                    # treating the failure as the end (files) or a dead stream (network cameras).
                    failed_grabs += 1
                    if failed_grabs <= (FILE_GRAB_RETRIES if is_file else STREAM_GRAB_RETRIES):
                        continue
                    failed_grabs = 0
                    if not is_file:
                        self.health.last_error = "stream stopped delivering frames"
                        return "delivered" if delivered else "failed"
                    if not cam.loop:
                        return "ended"
                    if index == 0:
                        self.health.last_error = "video file has no readable frames"
                        return "failed"
                    cap.release()
                    cap = self._factory(cam)
                    if not cap.isOpened():
                        self.health.last_error = "could not reopen video file"
                        return "delivered"
                    self.health.loops += 1
                    media_offset += index / fps
                    t_open = time.monotonic()
                    index = 0
                    continue
                if failed_grabs:  # packets skipped inside the stream, not its end
                    m.FRAMES_DROPPED.labels(self._labels, "undecodable").inc(failed_grabs)
                    failed_grabs = 0
                mono = time.monotonic()
                stream_s = media_offset + index / fps if is_file else mono
                index += 1
                # The frame's number in everything this camera has decoded (for a file played once: its
                # frame number), so a crop can be traced back to the exact frame of the footage.
                seq = self._seq
                self._seq += 1
                if not delivered:
                    delivered = True
                    self.health.state = "connected"
                    self.health.connected = True
                    self.health.last_error = ""
                    m.CAMERA_CONNECTED.labels(self._labels).set(1)
                self.health.frames_in += 1
                self.health.last_frame_mono = mono
                self.health.input_rate.mark(mono)
                m.FRAMES_IN.labels(self._labels).inc()
                if not sampler.due(stream_s):
                    continue
                ok, image = cap.retrieve()
                reason = self._check(ok, image)
                if reason is not None:
                    bad_run += 1
                    m.FRAMES_DROPPED.labels(self._labels, reason).inc()
                    if bad_run >= MAX_CONSECUTIVE_BAD:
                        self.health.last_error = f"{bad_run} unusable frames in a row ({reason})"
                        return "delivered"
                    continue
                bad_run = 0
                self.health.frames_sampled += 1
                frame = Frame(cam.camera_id, seq, now_ms(), mono, stream_s, image)
                if self.queue.put(frame) is not None:
                    self.health.dropped_queue += 1
                    m.FRAMES_DROPPED.labels(self._labels, "queue_full").inc()
            return "ended"
        finally:
            cap.release()

    def _check(self, ok: bool, image: Any) -> str | None:
        """None for a usable BGR frame, else the reason it is skipped (counted, never analysed)."""
        if not ok or not isinstance(image, np.ndarray) or image.dtype != np.uint8:
            self.health.corrupt += 1
            return "corrupt"
        if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 16 or image.shape[1] < 16:
            self.health.corrupt += 1
            return "corrupt"
        if image.shape[0] * image.shape[1] > self.max_pixels:
            self.health.oversized += 1
            return "oversized"
        return None
