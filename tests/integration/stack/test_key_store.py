"""Crop data keys never touch disk: they live in the stack's memory-only key store, never in the persistent
Redis whose append-only file and snapshots may be backed up; losing the key store only loses crops in flight.

Both tests run the real embedder stage (the `lfr embed` handler) over crops on the session broker.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from pathlib import Path

import cv2
import pytest

from lfr.core import stats, topics
from lfr.core.bus import make_producer
from lfr.core.config import Settings
from lfr.core.crypto import CropKeyring, crop_aad
from lfr.core.redis_client import make_keystore_redis, make_redis
from lfr.core.serde import encode
from lfr.core.stage import Stage
from lfr.core.timeutil import ts_now
from lfr.embedder.service import build_handler
from lfr.stack.local import LocalStack, _redis_ping
from lfr.v1.crop_pb2 import FaceCrop
from lfr.vision import FaceAnalyzer
from lfr.watchlist.store import WatchlistStore

pytestmark = [pytest.mark.integration]


def _chip(settings: Settings, face_data: Path) -> tuple[bytes, int]:
    path = face_data / "face_recognition_demo" / "knn_examples" / "train" / "obama" / "obama2.jpg"
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert img is not None, path
    face = FaceAnalyzer(settings).enrol(img)
    return cv2.imencode(".jpg", face.chip)[1].tobytes(), int(face.chip.shape[0])


async def _produce(
    settings: Settings, keyring: CropKeyring, chip: tuple[bytes, int], deployment_id: str, n: int
) -> list[str]:
    producer = make_producer(settings, "keystore-test")
    await producer.start()
    ids = []
    try:
        for _ in range(n):
            crop_id = uuid.uuid4().hex
            crop = FaceCrop(
                crop_id=crop_id,
                deployment_id=deployment_id,
                camera_id="cam-ks",
                track_id=f"t-{crop_id}",
                captured_at=ts_now(),
                detector_score=0.99,
                chip=await keyring.encrypt(chip[0], crop_aad(crop_id, "cam-ks", deployment_id)),
                chip_size=chip[1],
            )
            await producer.send_and_wait(topics.CROPS, encode(crop), key=b"cam-ks")
            ids.append(crop_id)
    finally:
        await producer.stop()
    return ids


async def _embed_until(settings: Settings, deployment_id: str, decided: int) -> dict[str, int]:
    """Run the real embedder stage until ``decided`` crops of the deployment are analysed or expired."""
    from lfr.vision import load_embedder

    redis = make_redis(settings)
    embedder = await asyncio.to_thread(load_embedder, settings)
    store = WatchlistStore(settings, embedder.card)
    stage = Stage(
        settings,
        "test-embedder",
        topics.CROPS,
        f"ks-{uuid.uuid4().hex[:6]}",
        build_handler(settings, redis, embedder, store),
        batch_size=16,
    )
    runner = asyncio.create_task(stage.run())
    try:
        async with asyncio.timeout(120):
            while True:  # the stage's own counters say when every crop was decided
                counts = await stats.totals(redis, settings, deployment_id)
                if counts.get(stats.FACES_ANALYSED, 0) + counts.get(stats.CROPS_EXPIRED, 0) >= decided:
                    return counts
                await asyncio.sleep(0.2)
    finally:
        stage.stop()
        await runner
        store.close()
        await redis.aclose()


def _files(directory: Path) -> tuple[set[str], bytes]:
    """Names and concatenated bytes of every file a Redis server wrote under its directory."""
    files = [p for p in directory.rglob("*") if p.is_file()]
    return {p.name for p in files}, b"".join(p.read_bytes() for p in files)


def _kill(pid: int) -> None:
    os.killpg(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


def _crop_keys(keyring: CropKeyring) -> tuple[str, bytes]:
    assert keyring._current is not None
    return keyring._current[0], keyring._current[1]


async def test_persistent_redis_files_hold_no_crop_key_after_a_pipeline_run(
    settings_for, stack_settings: Settings, face_data: Path, models_dir: Path, live_deployment
) -> None:  # type: ignore[no-untyped-def]
    settings: Settings = settings_for(models={"dir": models_dir})
    deployment_id = await live_deployment(settings)
    keyring = CropKeyring(settings)
    chip = _chip(settings, face_data)
    await _produce(settings, keyring, chip, deployment_id, 4)
    key_id, key = _crop_keys(keyring)
    counts = await _embed_until(settings, deployment_id, 4)
    assert counts[stats.FACES_ANALYSED] == 4, "the embedder opened every crop through the key store"

    redis, keystore = make_redis(settings), make_keystore_redis(settings)
    try:
        # The key is where it belongs ...
        assert await keystore.get(f"{settings.redis.key_prefix}cropkey:{key_id}") == key
        assert await keystore.config_get("save") == {"save": ""}
        assert await keystore.config_get("appendonly") == {"appendonly": "no"}
        # ... and nowhere in the persistent Redis's files, including a snapshot a backup job would take.
        await redis.save()
        await asyncio.sleep(1.5)  # appendfsync everysec
    finally:
        await redis.aclose()
        await keystore.aclose()
        await keyring.aclose()
    state = LocalStack(stack_settings).state()
    names, blob = _files(Path(state["redis"]["dir"]))
    assert "appendonly.aof" in names and "dump.rdb" in names, names
    assert deployment_id.encode() in blob, "the scan sees what the persistent Redis holds"
    assert key not in blob and key_id.encode() not in blob, "a crop key reached the persistent Redis's files"
    assert f"{settings.redis.key_prefix}cropkey".encode() not in blob, (
        "a crop key name in the persistent files"
    )
    assert not _files(Path(state["keystore"]["dir"]))[0], "the key store wrote a file"


async def test_losing_the_key_store_only_makes_in_flight_crops_unreadable(
    settings_for, face_data: Path, models_dir: Path, live_deployment, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    own = LocalStack(settings_for(data_dir=tmp_path))
    store_proc = own._start_redis("keystore", persistent=False)

    def wait_up() -> None:
        deadline = time.monotonic() + 20
        while not _redis_ping(store_proc.port):
            assert time.monotonic() < deadline, "the key store did not start"
            time.sleep(0.1)

    try:
        wait_up()
        settings: Settings = settings_for(models={"dir": models_dir}, redis={"keystore_url": store_proc.url})
        deployment_id = await live_deployment(settings)
        keyring = CropKeyring(settings)
        chip = _chip(settings, face_data)
        await _produce(settings, keyring, chip, deployment_id, 3)  # in flight when the store goes

        # The store dies and comes back empty on the same port, as a restarted pod would.
        _kill(store_proc.pid)
        store_proc = own._start_redis("keystore", persistent=False, port=store_proc.port)
        wait_up()
        # The same writer, still running, notices within a second that its key is gone and rotates.
        await asyncio.sleep(1.1)
        await _produce(settings, keyring, chip, deployment_id, 3)
        await keyring.aclose()

        counts = await _embed_until(settings, deployment_id, 6)
        assert counts.get(stats.CROPS_EXPIRED, 0) == 3, counts
        assert counts[stats.FACES_ANALYSED] == 3, counts
    finally:
        _kill(store_proc.pid)
