"""Cameras added and removed through the API reach a running ingest worker without a restart."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from lfr.api.app import create_app
from lfr.api.context import ApiContext
from lfr.core.audit import read_all
from lfr.core.redis_client import make_redis
from lfr.ingest.cameras import my_cameras
from lfr.ingest.pipeline import IngestPipeline
from lfr.ingest.publisher import CropPublisher
from lfr.ingest.registry import CameraRegistry, all_cameras
from lfr.ingest.service import SYNC_INTERVAL_S, IngestWorker

pytestmark = pytest.mark.integration
KEYS = [
    {"name": "admin", "key": "k-admin", "roles": ["watchlist-admin"]},
    {"name": "op", "key": "k-op", "roles": ["operator"]},
]


def _h(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
async def api(settings_for, models_dir: Path) -> AsyncIterator[tuple[httpx.AsyncClient, object]]:
    settings = settings_for(api={"api_keys": KEYS}, models={"dir": models_dir})
    app = create_app(settings)  # the app `lfr api` serves, so a router left out of it fails here
    app.state.ctx = await ApiContext.start(settings)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            yield client, settings
    finally:
        await app.state.ctx.close()


async def test_camera_routes_check_roles_and_hide_credentials(api, live_deployment) -> None:  # type: ignore[no-untyped-def]
    client, settings = api
    dep = await live_deployment(settings)
    cam = {"camera_id": "gate-3", "deployment_id": dep, "url": "rtsp://user:secret@127.0.0.1:1/stream"}
    assert (await client.get("/api/v1/cameras")).status_code == 401
    assert (await client.post("/api/v1/cameras", json=cam, headers=_h("k-op"))).status_code == 403
    created = await client.post("/api/v1/cameras", json=cam, headers=_h("k-admin"))
    assert created.status_code == 201, created.text
    assert "secret" not in created.text
    assert (await client.post("/api/v1/cameras", json=cam, headers=_h("k-admin"))).status_code == 409
    unknown = {**cam, "camera_id": "gate-4", "deployment_id": "dep-nope"}
    assert (await client.post("/api/v1/cameras", json=unknown, headers=_h("k-admin"))).status_code == 404
    bad = {**cam, "camera_id": "gate-5", "url": "ftp://x"}
    assert (await client.post("/api/v1/cameras", json=bad, headers=_h("k-admin"))).status_code == 422
    listed = await client.get("/api/v1/cameras", headers=_h("k-op"))
    assert listed.status_code == 200 and "secret" not in listed.text
    assert [(c["camera_id"], c["defined_in"]) for c in listed.json()] == [("gate-3", "api")]
    assert (await client.delete("/api/v1/cameras/gate-3", headers=_h("k-op"))).status_code == 403
    assert (await client.delete("/api/v1/cameras/gate-3", headers=_h("k-admin"))).status_code == 204
    assert (await client.delete("/api/v1/cameras/gate-3", headers=_h("k-admin"))).status_code == 404
    actions = [(e.action, e.target) for e in await read_all(settings) if e.target == "gate-3"]
    assert ("camera.add", "gate-3") in actions and ("camera.remove", "gate-3") in actions


async def test_running_worker_follows_the_registry(
    api,
    live_deployment,
    face_data: Path,  # type: ignore[no-untyped-def]
) -> None:
    client, settings = api
    dep = await live_deployment(settings)
    clip = face_data / "face_recognition_demo" / "video" / "short_hamilton_clip.mp4"
    redis = make_redis(settings)
    registry = CameraRegistry(settings, redis)

    async def desired():  # type: ignore[no-untyped-def]
        return my_cameras(await all_cameras(settings, registry), 1, 0)

    pipeline = await asyncio.to_thread(IngestPipeline.from_settings, settings)
    keys = ("k1", b"\x00" * 32)

    async def key_source() -> tuple[str, bytes]:
        return keys

    worker = IngestWorker(
        settings, [], pipeline, key_source, CropPublisher(settings), desired=desired, pace_files=True
    )
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        body = {"camera_id": "van-1", "deployment_id": dep, "url": str(clip), "loop": True}
        assert (await client.post("/api/v1/cameras", json=body, headers=_h("k-admin"))).status_code == 201
        t0 = time.monotonic()
        while "van-1" not in worker.sources or worker.sources["van-1"].health.frames_in == 0:
            assert time.monotonic() - t0 < SYNC_INTERVAL_S + 10, "the worker did not start the new camera"
            await asyncio.sleep(0.1)
        added_in = time.monotonic() - t0
        assert (await client.delete("/api/v1/cameras/van-1", headers=_h("k-admin"))).status_code == 204
        t0 = time.monotonic()
        while "van-1" in worker.sources:
            assert time.monotonic() - t0 < SYNC_INTERVAL_S + 10, "the worker did not stop the removed camera"
            await asyncio.sleep(0.1)
        print(f"camera added and reading frames in {added_in:.1f}s; removed in {time.monotonic() - t0:.1f}s")
    finally:
        stop.set()
        await task
        await redis.aclose()
