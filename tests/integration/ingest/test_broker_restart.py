"""The broker goes away for 10 s and comes back: ingest keeps analysing, then publishing resumes.

Uses its own Tansu broker on a free port (the session stack must keep running). Tansu's memory engine
loses its topics on restart, so they are provisioned again after the restart, as an operator's
`lfr topics create` (or the Helm hook) would. Records the producer retried into the restarted broker
before the topic existed again are acknowledged by Tansu's memory engine and then lost (measured; a
persistent engine or Apache Kafka keeps the topic), so the test checks what was published after the
topics were provisioned again.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from lfr.core.bus import ensure_topics, wait_for_broker
from lfr.core.crypto import CropKeyring
from lfr.core.redis_client import make_redis
from lfr.ingest.cameras import Camera
from lfr.ingest.pipeline import IngestPipeline
from lfr.ingest.publisher import CropPublisher
from lfr.ingest.service import DeploymentGate, IngestWorker
from lfr.stack.local import free_port, tansu_binary

pytestmark = [pytest.mark.integration]

OUTAGE_S = 10.0


class Broker:
    """A Tansu broker this test starts and stops itself (its own process group, killed by pid only)."""

    def __init__(self, log: Path) -> None:
        self.port = free_port()
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        url = f"tcp://127.0.0.1:{self.port}"
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    *(str(tansu_binary()), "broker", "--listener-url", url),
                    *("--advertised-listener-url", url, "--storage-engine", "memory://tansu/"),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path / "tansu.log")
    b.start()
    try:
        yield b
    finally:
        b.stop()


@pytest.mark.long
async def test_ingest_survives_a_broker_outage_and_resumes(
    settings_for, models_dir: Path, street_video: Path, broker: Broker, live_deployment, read_crops
) -> None:
    settings = settings_for(
        kafka={"bootstrap_servers": f"127.0.0.1:{broker.port}"},
        ingest={"analyse_fps": 3, "best_shot_min_interval_s": 0.5},
        # Transport is under test here, not the quality gate: let more faces through so crops are frequent.
        quality={"min_sharpness": 5.0, "min_detector_score": 0.8},
        models={"dir": models_dir},
    )
    await wait_for_broker(settings, timeout_s=30)
    await ensure_topics(settings)
    deployment_id = await live_deployment(settings)
    redis = make_redis(settings)
    try:
        pipeline = await asyncio.to_thread(IngestPipeline.from_settings, settings)
        publisher = CropPublisher(settings)
        worker = IngestWorker(
            settings,
            [Camera(camera_id="loop-cam", deployment_id=deployment_id, url=str(street_video), loop=True)],
            pipeline,
            CropKeyring(settings).current,
            publisher,
            gate=DeploymentGate(settings, redis),
            redis=redis,
        )
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        async with asyncio.timeout(40):
            while publisher.stats.delivered < 1:  # noqa: ASYNC110
                await asyncio.sleep(0.1)
        assert await publisher.broker_ready()

        broker.stop()
        before = (pipeline.totals.frames, publisher.stats.delivered)
        await asyncio.sleep(OUTAGE_S)
        during = (pipeline.totals.frames, publisher.stats.delivered)
        assert not task.done(), "the worker must keep running while the broker is away"
        assert during[0] >= before[0] + 10, "frames were still analysed during the outage"
        assert during[1] <= before[1] + 1  # (at most a batch that was already on its way)
        assert not await publisher.broker_ready()

        broker.start()
        await wait_for_broker(settings, timeout_s=30)
        await ensure_topics(settings)  # the memory engine forgot every topic
        mark = publisher.stats.delivered
        async with asyncio.timeout(60):
            while publisher.stats.delivered < mark + 3:  # noqa: ASYNC110
                await asyncio.sleep(0.2)
        stop.set()
        await task
        stats = publisher.stats
        print(
            "broker outage:",
            {
                "frames": pipeline.totals.frames,
                "crops": pipeline.totals.crops,
                "delivered": stats.delivered,
                "retried": stats.retried,
                "dropped_overflow": stats.dropped_overflow,
                "dropped_stale": stats.dropped_stale,
                "dropped_shutdown": stats.dropped_shutdown,
                "delivered_before_outage": before[1],
                "delivered_after_reprovisioning": stats.delivered - mark,
            },
        )
        # What the restarted broker holds came from this worker after the restart.
        after = await read_crops(settings, deployment_id, expect=stats.delivered - mark, timeout_s=15)
        assert len(after) >= 2 and {c.camera_id for c in after} == {"loop-cam"}
    finally:
        await redis.aclose()
