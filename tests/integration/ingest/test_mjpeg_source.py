"""An HTTP MJPEG camera (multipart/x-mixed-replace, as IP cameras serve it) read by the real ingest source
through OpenCV's FFmpeg backend; the server goes away and comes back, and the source reconnects."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np
import pytest

from lfr.core.config import load_settings
from lfr.ingest.cameras import Camera
from lfr.ingest.sources import CameraSource

pytestmark = pytest.mark.integration

# Frames whose mean brightness says which frame they are (and so that the stream really moves).
JPEGS = [cv2.imencode(".jpg", np.full((240, 320, 3), 20 + 20 * i, np.uint8))[1].tobytes() for i in range(10)]


class _MjpegHandler(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=lfrframe")
        self.end_headers()
        i = 0
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            while not self.server.stopping.is_set():  # type: ignore[attr-defined]
                jpeg = JPEGS[i % len(JPEGS)]
                i += 1
                head = f"--lfrframe\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                self.wfile.write(head.encode() + jpeg + b"\r\n")
                time.sleep(0.05)  # 20 fps


@contextlib.contextmanager
def mjpeg_server(port: int = 0) -> Iterator[int]:
    ThreadingHTTPServer.allow_reuse_address = True
    srv = ThreadingHTTPServer(("127.0.0.1", port), _MjpegHandler)
    srv.daemon_threads = True
    srv.stopping = threading.Event()  # type: ignore[attr-defined]
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(srv.server_address[1])
    finally:
        srv.stopping.set()  # type: ignore[attr-defined]
        srv.shutdown()
        srv.server_close()
        thread.join(5)


async def _frames(src: CameraSource, n: int, timeout_s: float) -> list[float]:
    out: list[float] = []
    async with asyncio.timeout(timeout_s):
        while len(out) < n:
            frame = await src.next_frame()
            assert frame is not None and frame.image.shape == (240, 320, 3)
            out.append(float(frame.image.mean()))
    return out


async def test_mjpeg_camera_is_read_and_reconnects_after_the_server_returns() -> None:
    settings = load_settings(
        ingest={"analyse_fps": 10, "queue_frames": 64, "reconnect_initial_s": 0.2, "reconnect_max_s": 1.0}
    )
    with mjpeg_server() as port:
        cam = Camera(camera_id="ipcam", deployment_id="dep", url=f"http://127.0.0.1:{port}/video.mjpg")
        assert cam.kind == "http"
        src = CameraSource(cam, settings, seed=1)
        src.start()
        try:
            first = await _frames(src, 8, 20)
            assert src.health.connected and src.health.state == "connected"
            assert len({round(b) for b in first}) > 1, "successive MJPEG parts are decoded, not one repeated"
        except BaseException:
            src.stop()
            raise
    # The server is gone: the reader notices, backs off and keeps trying.
    try:
        async with asyncio.timeout(20):
            while src.health.reconnects == 0:  # noqa: ASYNC110 (the reader thread updates plain counters)
                await asyncio.sleep(0.1)
        assert not src.health.connected
        while src.queue.get_nowait() is not None:  # drop what was read before the outage
            pass
        with mjpeg_server(port):
            again = await _frames(src, 5, 30)
            assert len(again) == 5 and src.health.connected
        assert src.health.reconnects >= 1
        print(f"\nMJPEG: {src.health.frames_in} frames in, {src.health.reconnects} reconnect(s)")
    finally:
        src.stop()
