"""The monitor's windowed figures stay exact across SIGKILL and SIGTERM restarts on the embedded broker.

Camera reports stream in while `lfr monitor` (a real process: faust-streaming 0.15.3, the offset guard,
tables recovered from their changelogs) is killed with SIGKILL, restarted, stopped with SIGTERM and
restarted again. Afterwards every camera's per-minute frames, faces and crops must equal what was sent:
a record skipped by faust's resume-before-seek race would show as a shortfall, a redelivered record counted
twice as an excess. The guard's re-read count is printed (how often faust skipped offsets in this run).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from pathlib import Path

import pytest

from lfr.core import topics
from lfr.core.bus import ensure_topics, make_producer
from lfr.core.config import Settings
from lfr.core.redis_client import make_redis
from lfr.monitor import records
from lfr.monitor.windows import MINUTE_MS

pytestmark = pytest.mark.integration
CAMERAS = 8
RATE_PER_S = 60


def _env(settings: Settings, data_dir: Path) -> dict[str, str]:
    k = settings.kafka
    return {
        **os.environ,
        "LFR_DATA_DIR": str(data_dir),
        "LFR_KAFKA__BOOTSTRAP_SERVERS": settings.kafka_bootstrap,
        "LFR_KAFKA__CROPS_PARTITIONS": str(k.crops_partitions),
        "LFR_KAFKA__HITS_PARTITIONS": str(k.hits_partitions),
        "LFR_KAFKA__ALERTS_PARTITIONS": str(k.alerts_partitions),
        "LFR_REDIS__URL": settings.redis_url,
        "LFR_REDIS__KEYSTORE_URL": settings.keystore_redis_url,
        "LFR_REDIS__KEY_PREFIX": settings.redis.key_prefix,
        "LFR_MILVUS__URI": settings.milvus_uri,
        "LFR_MONITOR__APP_ID": settings.monitor.app_id,
        "LFR_MONITOR__CHECK_INTERVAL_S": "0.5",
        "LFR_OBSERVABILITY__LOG_LEVEL": "WARNING",
    }


def _start(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "lfr.monitor"], env=env, stdout=out, stderr=subprocess.STDOUT
        )


class Feed:
    """Sends camera reports at a steady rate and remembers what each camera sent per minute."""

    def __init__(self, settings: Settings, tag: str) -> None:
        self.settings = settings
        self.cameras = [f"cam-{tag}-{i}" for i in range(CAMERAS)]
        self.sent: dict[tuple[str, int], list[int]] = defaultdict(lambda: [0, 0, 0])
        self.count = 0
        self.stop = asyncio.Event()

    async def run(self) -> None:
        producer = make_producer(self.settings, "test-feed")
        await producer.start()
        try:
            while not self.stop.is_set():
                futures = []
                for _ in range(RATE_PER_S // 10):
                    cam = self.cameras[self.count % CAMERAS]
                    frames, faces, crops = 5 + self.count % 7, self.count % 3, self.count % 2
                    at = int(time.time() * 1000)
                    doc = {"camera_id": cam, "deployment_id": "dep-restarts", "frames": frames, "analysed": 1,
                           "faces": faces, "crops": crops}  # fmt: skip
                    futures.append(
                        await producer.send(
                            topics.CAMERA_STATS, json.dumps(doc).encode(), key=cam.encode(), timestamp_ms=at
                        )
                    )
                    tally = self.sent[(cam, at // MINUTE_MS * MINUTE_MS)]
                    tally[0] += frames
                    tally[1] += faces
                    tally[2] += crops
                    self.count += 1
                await asyncio.gather(*futures)
                await asyncio.sleep(0.1)
        finally:
            await producer.stop()


async def _figures(settings: Settings, cameras: list[str]) -> dict[tuple[str, int], list[int]]:
    redis = make_redis(settings)
    try:
        out: dict[tuple[str, int], list[int]] = {}
        for cam in cameras:
            doc = await records.read_json(redis, records.camera_key(settings, cam))
            for m in (doc or {}).get("minutes", []):
                out[(cam, int(m["minute_ms"]))] = [int(m["frames"]), int(m["faces"]), int(m["crops"])]
        return out
    finally:
        await redis.aclose()


async def _heartbeat(settings: Settings) -> dict[str, object] | None:
    redis = make_redis(settings)
    try:
        return await records.read_json(redis, records.heartbeat_key(settings))
    finally:
        await redis.aclose()


async def _wait_processing(settings: Settings, feed: Feed, timeout_s: float = 40.0) -> float:
    """Seconds until the monitor's figures grow past what they were (it consumes again)."""
    t0 = time.monotonic()
    before = sum(v[0] for v in (await _figures(settings, feed.cameras)).values())
    while time.monotonic() - t0 < timeout_s:
        await asyncio.sleep(0.5)
        now = sum(v[0] for v in (await _figures(settings, feed.cameras)).values())
        if now > before:
            return time.monotonic() - t0
    raise AssertionError(f"the monitor did not process again within {timeout_s} s")


@pytest.mark.long
async def test_windowed_figures_are_exact_across_kill_and_restart(settings_for, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:6]
    settings: Settings = settings_for(monitor={"app_id": f"mon-test-{tag}"})
    await ensure_topics(settings)
    env, log = _env(settings, tmp_path), tmp_path / "monitor.log"
    feed = Feed(settings, tag)
    feeding = asyncio.create_task(feed.run())
    proc = _start(env, log)
    timings: dict[str, float] = {}
    try:
        timings["first start"] = await _wait_processing(settings, feed)
        await asyncio.sleep(2)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        await asyncio.sleep(1)
        proc = _start(env, log)
        timings["after SIGKILL"] = await _wait_processing(settings, feed)
        await asyncio.sleep(2)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text()[-2000:]
        proc = _start(env, log)
        timings["after SIGTERM"] = await _wait_processing(settings, feed)
        await asyncio.sleep(2)
        feed.stop.set()
        await feeding
        # Converged: the monitor's figures equal what was sent, window by window.
        deadline = time.monotonic() + 30
        figures: dict[tuple[str, int], list[int]] = {}
        while time.monotonic() < deadline:
            figures = await _figures(settings, feed.cameras)
            if figures == dict(feed.sent):
                break
            await asyncio.sleep(0.5)
        beat = await _heartbeat(settings)
        print(f"\nrecords {feed.count}, windows {len(feed.sent)}, processing again after {timings}, "
              f"records re-read by the guard {beat and beat.get('gaps_filled')}")  # fmt: skip
        for line in log.read_text().splitlines():
            if "skipped offsets" in line:
                print(line)
        wrong = {k: (figures.get(k), v) for k, v in feed.sent.items() if figures.get(k) != v}
        assert not wrong, f"windows differing (monitor, sent): {dict(list(wrong.items())[:5])}"
        assert set(figures) == set(feed.sent)
    finally:
        feed.stop.set()
        if not feeding.done():
            await feeding
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
