"""Camera readers with fake captures: sampling, drop-oldest queue, bad frames, reconnect, isolation."""

from __future__ import annotations

import asyncio
import random
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from lfr.core.config import load_settings
from lfr.core.retry import backoff_delay
from lfr.ingest.cameras import Camera
from lfr.ingest.sources import CameraSource, Frame, FrameQueue, Sampler

GOOD = np.zeros((48, 64, 3), np.uint8)


def frame(seq: int) -> Frame:
    return Frame("c", seq, 0, 0.0, seq / 5, GOOD)


class FakeCapture:
    """Yields ``frames`` (an image, None for a corrupt frame, or 'fail' to end the stream)."""

    def __init__(self, frames: list[Any], opened: bool = True, fps: float = 25.0, delay_s: float = 0.0):
        self.frames = list(frames)
        self.opened = opened
        self.fps = fps
        self.delay_s = delay_s
        self.current: Any = None
        self.retrieved = 0

    def isOpened(self) -> bool:
        return self.opened

    def grab(self) -> bool:
        if self.delay_s:
            time.sleep(self.delay_s)
        if not self.frames:
            return False
        self.current = self.frames.pop(0)
        return not (isinstance(self.current, str) and self.current == "fail")

    def retrieve(self) -> tuple[bool, Any]:
        self.retrieved += 1
        return (self.current is not None), self.current

    def get(self, prop: int) -> float:
        return self.fps if prop == cv2.CAP_PROP_FPS else 0.0

    def release(self) -> None:
        pass


def settings(**ingest: Any):  # type: ignore[no-untyped-def]
    base = {"queue_frames": 4, "reconnect_initial_s": 0.01, "reconnect_max_s": 0.05, "analyse_fps": 5}
    return load_settings(ingest={**base, **ingest}, detector={"max_image_pixels": 10_000})


def test_queue_drops_the_oldest_and_counts() -> None:
    q = FrameQueue(3)
    for i in range(5):
        q.put(frame(i))
    assert q.dropped == 2
    assert [q.get_nowait().seq for _ in range(3)] == [2, 3, 4]  # type: ignore[union-attr]
    assert q.get_nowait() is None


def test_sampler_picks_analyse_fps_from_a_faster_stream_and_all_of_a_slower_one() -> None:
    s = Sampler(5.0)
    picked = [i for i in range(100) if s.due(i / 25.0)]
    assert picked == list(range(0, 100, 5))
    slow = Sampler(5.0)
    assert all(slow.due(i / 2.0) for i in range(10))
    gap = Sampler(5.0)
    assert gap.due(0.0) and gap.due(10.0) and not gap.due(10.1) and gap.due(10.2)


def test_backoff_grows_exponentially_with_jitter_and_is_capped() -> None:
    rng = random.Random(1)
    delays = [backoff_delay(a + 1, 0.5, 30.0, rng.random) for a in range(10)]
    for a, d in enumerate(delays):
        cap = min(30.0, 0.5 * 2**a)
        assert cap / 2 <= d <= cap
    assert max(delays) <= 30.0
    assert len({round(backoff_delay(4, 0.5, 30.0, rng.random), 6) for _ in range(20)}) > 10  # jittered


def _run_source(
    cam: Camera, factory: Callable[[Camera], Any], s: Any, until: Callable[[CameraSource], bool]
) -> CameraSource:
    src = CameraSource(cam, s, capture_factory=factory, pace_files=False, seed=1)
    src.start()
    deadline = time.monotonic() + 5
    while not until(src) and time.monotonic() < deadline:
        time.sleep(0.01)
    src.stop()
    return src


def test_corrupt_and_oversized_frames_are_counted_and_skipped() -> None:
    big = np.zeros((200, 200, 3), np.uint8)  # 40,000 px > max_image_pixels 10,000
    grey = np.zeros((48, 64), np.uint8)
    frames = [GOOD, None, big, grey, GOOD, GOOD]
    cam = Camera(camera_id="c1", deployment_id="d", url="rtsp://h/s")
    s = settings(analyse_fps=60, queue_frames=10)
    src = _run_source(
        cam, lambda c: FakeCapture(list(frames), delay_s=0.02), s, lambda x: x.health.frames_in >= 6
    )
    h = src.health
    assert h.corrupt == 2 and h.oversized == 1
    got = []
    while (f := src.queue.get_nowait()) is not None:
        got.append(f)
    assert len(got) == 3 and all(f.image.shape == (48, 64, 3) for f in got)
    assert [f.seq for f in got] == [0, 4, 5]  # each frame keeps its number in the decoded stream


def test_only_sampled_frames_are_retrieved() -> None:
    caps: list[FakeCapture] = []

    def factory(c: Camera) -> FakeCapture:
        caps.append(FakeCapture([GOOD] * 50, fps=25.0))
        return caps[-1]

    with tempfile.NamedTemporaryFile(suffix=".mp4") as tmp:  # a file camera's path must exist
        cam = Camera(camera_id="f1", deployment_id="d", url=tmp.name)
        src = _run_source(cam, factory, settings(queue_frames=50), lambda x: x.health.state == "ended")
    assert src.health.frames_in == 50
    assert caps[0].retrieved == 10  # 25 fps file analysed at 5 fps
    assert src.health.state == "ended"


def test_dead_stream_reconnects_with_backoff_and_recovers() -> None:
    attempts = {"n": 0}

    def factory(c: Camera) -> FakeCapture:
        attempts["n"] += 1
        if attempts["n"] <= 2:
            return FakeCapture([], opened=False)
        if attempts["n"] == 3:
            return FakeCapture([GOOD, GOOD, "fail"])
        return FakeCapture([GOOD] * 1000, delay_s=0.001)

    cam = Camera(camera_id="r1", deployment_id="d", url="rtsp://h/s")
    src = _run_source(
        cam, factory, settings(analyse_fps=60), lambda x: attempts["n"] >= 4 and x.health.connected
    )
    assert src.health.reconnects >= 3
    snap = src.health.snapshot()
    assert snap["reconnects"] >= 3 and snap["frames_in"] >= 2


async def test_a_stalled_camera_does_not_hold_up_another() -> None:
    release = threading.Event()

    def stalled(c: Camera) -> FakeCapture:
        release.wait(10)  # an RTSP open hanging on an unreachable host
        return FakeCapture([], opened=False)

    s = settings(queue_frames=2, analyse_fps=50)
    slow = CameraSource(Camera(camera_id="slow", deployment_id="d", url="rtsp://h/a"), s, stalled, seed=1)
    fast = CameraSource(
        Camera(camera_id="fast", deployment_id="d", url="rtsp://h/b"),
        s,
        lambda c: FakeCapture([GOOD] * 10_000, delay_s=0.002),
        seed=1,
    )
    slow.start()
    fast.start()
    try:
        got = []
        for _ in range(5):
            f = await asyncio.wait_for(fast.next_frame(), timeout=2.0)
            assert f is not None
            got.append(f.seq)
        assert got == sorted(got)
        assert slow.health.frames_in == 0 and slow.health.state == "connecting"
        await asyncio.sleep(0.3)  # the analyser is slow now: the queue keeps only the newest frames
        assert len(fast.queue) == 2 and fast.health.dropped_queue > 0
    finally:
        release.set()
        slow.stop()
        fast.stop()


async def test_next_frame_returns_none_when_a_file_ends() -> None:
    with tempfile.NamedTemporaryFile(suffix=".mp4") as tmp:
        cam = Camera(camera_id="e", deployment_id="d", url=tmp.name)
        src = CameraSource(
            cam, settings(queue_frames=10), lambda c: FakeCapture([GOOD] * 5), pace_files=False
        )
        src.start()
        seen = 0
        while (await asyncio.wait_for(src.next_frame(), timeout=3.0)) is not None:
            seen += 1
        assert seen == 1  # 5 frames at 25 fps sampled at 5 fps
        assert src.health.state == "ended"


def test_missing_file_is_a_failure_with_a_reason_not_a_crash() -> None:
    cam = Camera(camera_id="m", deployment_id="d", url="/nonexistent/video.mp4")
    src = _run_source(cam, lambda c: FakeCapture([GOOD]), settings(), lambda x: x.health.reconnects >= 2)
    assert src.health.last_error == "video file not found" and not src.health.connected


def test_a_damaged_stretch_is_skipped_not_taken_for_the_end(tmp_path: Path) -> None:
    video = tmp_path / "damaged.mp4"
    video.write_bytes(b"stands in for a file; FakeCapture supplies the frames")
    cam = Camera(camera_id="c1", deployment_id="d", url=str(video))
    s = settings(analyse_fps=60, queue_frames=10)
    frames = [GOOD, "fail", "fail", GOOD, GOOD]  # two undecodable packets mid-file
    src = _run_source(cam, lambda c: FakeCapture(list(frames)), s, lambda x: x.finished)
    got = []
    while (f := src.queue.get_nowait()) is not None:
        got.append(f)
    assert [f.seq for f in got] == [0, 1, 2], "frames after the damaged packets are still delivered"
    assert src.finished


def test_local_devices_open_by_index_or_path_and_streams_through_ffmpeg(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """No /dev/video* exists here, so what OpenCV is asked to open is checked, then a real open of a
    missing device must fail cleanly (the reader then backs off like any dead camera)."""
    from lfr.ingest import sources

    opened: list[tuple[Any, int]] = []
    real = cv2.VideoCapture
    monkeypatch.setattr(sources.cv2, "VideoCapture", lambda src, api, params: opened.append((src, api)))
    for url in (0, "1", "/dev/video2", "http://cam.example/mjpg", "rtsp://cam.example/s"):
        sources.open_capture(Camera(camera_id="c", deployment_id="d", url=url))
    assert opened == [
        (0, cv2.CAP_ANY),  # V4L2 picks the device by index
        (1, cv2.CAP_ANY),  # "1" from a YAML string or the API's JSON is an index too, never a file named 1
        ("/dev/video2", cv2.CAP_ANY),
        ("http://cam.example/mjpg", cv2.CAP_FFMPEG),
        ("rtsp://cam.example/s", cv2.CAP_FFMPEG),
    ]
    monkeypatch.setattr(sources.cv2, "VideoCapture", real)
    cap = sources.open_capture(Camera(camera_id="c", deployment_id="d", url=9))
    assert not cap.isOpened()
    cap.release()
