"""Ingest on the real street video against the real broker and Redis.

Publishes best-shot crops of facenet_pytorch_samples/video/video.mp4 (1920x1080, 4.2 s) to lfr.crops.v1,
next to a camera whose URL is dead and one whose file is missing; checks best-shot limits, that the chips
decrypt while their key lives and are unreadable once the key's TTL has passed.
"""

from __future__ import annotations

import asyncio
import collections
from pathlib import Path

import cv2
import numpy as np
import pytest

from lfr.core.crypto import CropKeyring, KeyExpired, crop_aad
from lfr.core.redis_client import make_redis
from lfr.ingest.cameras import Camera
from lfr.ingest.pipeline import IngestPipeline
from lfr.ingest.publisher import CropPublisher
from lfr.ingest.service import DeploymentGate, IngestWorker
from lfr.ingest.status import read_status
from lfr.stack.local import free_port

pytestmark = [pytest.mark.integration]

MAX_PER_TRACK = 3


async def test_street_video_publishes_bounded_sealed_crops_and_bad_cameras_are_isolated(
    settings_for, models_dir: Path, street_video: Path, live_deployment, read_crops, record_property
) -> None:
    settings = settings_for(
        crypto={"key_ttl_s": 5, "key_rotation_s": 1},
        ingest={
            "best_shot_max_per_track": MAX_PER_TRACK,
            "reconnect_initial_s": 0.2,
            "reconnect_max_s": 1.0,
            # Room for every sampled frame even on a busy CI machine, so the counts below are exact
            # (the drop-oldest policy itself is unit-tested).
            "queue_frames": 32,
        },
        models={"dir": models_dir},
    )
    deployment_id = await live_deployment(settings)
    cams = [
        Camera(camera_id="street", deployment_id=deployment_id, url=str(street_video)),
        Camera(camera_id="dead-rtsp", deployment_id=deployment_id, url=f"rtsp://127.0.0.1:{free_port()}/s"),
        Camera(camera_id="missing-file", deployment_id=deployment_id, url="/nonexistent/cam.mp4"),
    ]
    redis = make_redis(settings)
    try:
        pipeline = await asyncio.to_thread(IngestPipeline.from_settings, settings)
        publisher = CropPublisher(settings)
        keyring = CropKeyring(settings)  # the memory-only key store
        worker = IngestWorker(
            settings,
            cams,
            pipeline,
            keyring.current,
            publisher,
            gate=DeploymentGate(settings, redis),
            redis=redis,
        )
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        street = worker.sources["street"]
        async with asyncio.timeout(60):
            while not (street.finished and len(street.queue) == 0 and publisher.pending == 0):  # noqa: ASYNC110
                await asyncio.sleep(0.1)
            await asyncio.sleep(1.0)  # the last frame's analysis and the end-of-stream flush
            while publisher.in_flight or publisher.pending:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        status = await read_status(redis, settings, [c.camera_id for c in cams])
        snapshot = {d["camera_id"]: d for d in worker.status()}
        stop.set()
        await task

        totals = pipeline.totals.as_dict()
        delivered = publisher.stats.delivered
        crops = await read_crops(settings, deployment_id, expect=delivered)
        per_track = collections.Counter(c.track_id for c in crops)
        report = {
            "frames_in": snapshot["street"]["frames_in"],
            "frames_analysed": totals["frames"],
            "detections": totals["faces"],
            "rejected_quality": totals["rejected_quality"],
            "tracks": totals["tracks"],
            "crops": len(crops),
            "crops_per_track_max": max(per_track.values(), default=0),
            "crops_per_track_median": totals["crops_per_track_median"],
        }
        print("ingest on street video:", report)
        for k, v in report.items():
            record_property(k, v)

        # 4.2 s at 25 fps, analysed at 5 fps; the detector finds the pedestrians; best-shot bounds crops.
        assert snapshot["street"]["frames_in"] == 105
        assert snapshot["street"]["dropped_queue"] == 0
        assert totals["frames"] == 21
        assert totals["faces"] >= 3 * totals["frames"]
        assert delivered == totals["crops"] == len(crops) > 0
        assert max(per_track.values()) <= MAX_PER_TRACK
        assert len(crops) <= MAX_PER_TRACK * totals["tracks"]
        assert len(crops) < totals["faces"] / 2  # load follows people, not frames
        assert {c.camera_id for c in crops} == {"street"}
        assert all(c.detector_model_id == pipeline.detector.model_id for c in crops)

        # Bad cameras failed on their own, with reasons, and kept retrying; the good one was unaffected.
        for cid in ("dead-rtsp", "missing-file"):
            assert not snapshot[cid]["connected"] and snapshot[cid]["frames_in"] == 0
            assert snapshot[cid]["reconnects"] >= 1 and snapshot[cid]["last_error"]
            assert status[cid] is not None and status[cid]["connected"] is False
        assert status["street"] is not None and status["street"]["frames_in"] > 0
        assert "127.0.0.1" in status["dead-rtsp"]["url"]

        # While the key lives the chip decrypts (by any reader with Redis access) ...
        reader = CropKeyring(settings)
        newest = max(crops, key=lambda c: c.captured_at.ToMilliseconds())
        jpeg = await reader.decrypt(newest.chip, crop_aad(newest.crop_id, newest.camera_id, deployment_id))
        chip = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert chip.shape == (newest.chip_size, newest.chip_size, 3)

        # ... and once the key's TTL has passed every crop is unreadable: deleted by design.
        await asyncio.sleep(settings.crypto.key_ttl_s + 0.5)
        fresh = CropKeyring(settings)
        for c in crops:
            with pytest.raises(KeyExpired):
                await fresh.decrypt(c.chip, crop_aad(c.crop_id, c.camera_id, deployment_id))
    finally:
        await redis.aclose()
