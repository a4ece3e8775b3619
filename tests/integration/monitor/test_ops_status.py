"""The operations status over HTTP against the real stack: only the operations role reads it, and it reports
lag per partition from real committed offsets, camera health from ingest reports, and key TTLs."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
from aiokafka import TopicPartition
from fastapi import FastAPI

from lfr.api import routes_ops
from lfr.api.context import ApiContext
from lfr.core import topics
from lfr.core.bus import ensure_topics, make_consumer, make_producer
from lfr.core.config import Settings
from lfr.core.redis_client import key as rkey
from lfr.core.redis_client import make_keystore_redis
from lfr.ingest.status import write_status
from lfr.monitor import records

pytestmark = pytest.mark.integration

KEYS = {"ops": "k-ops", "operator": "k-op"}
API_KEYS = [
    {"name": "ops.user", "key": KEYS["ops"], "roles": ["operations"]},
    {"name": "operator.user", "key": KEYS["operator"], "roles": ["operator"]},
]


@pytest.fixture
async def api(settings_for) -> AsyncIterator[tuple[httpx.AsyncClient, Settings, ApiContext]]:
    settings: Settings = settings_for(api={"api_keys": API_KEYS}, monitor={"app_id": "ops-test-monitor"})
    await ensure_topics(settings)
    app = FastAPI()
    app.include_router(routes_ops.router)
    app.state.settings = settings
    ctx = await ApiContext.start(settings)
    app.state.ctx = ctx
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            yield client, settings, ctx
    finally:
        await ctx.close()


def _h(role: str | None) -> dict[str, str]:
    return {} if role is None else {"Authorization": f"Bearer {KEYS[role]}"}


async def test_only_the_operations_role_reads_the_status(api) -> None:  # type: ignore[no-untyped-def]
    client, _, _ = api
    assert (await client.get("/api/v1/ops/status")).status_code == 401
    assert (await client.get("/api/v1/ops/status", headers=_h("operator"))).status_code == 403
    r = await client.get("/api/v1/ops/status", headers=_h("ops"))
    assert r.status_code == 200, r.text
    doc = r.json()
    assert set(doc) == {
        "generated_at", "healthy", "stack", "groups", "throughput", "cameras", "deployments", "keys",
        "events", "monitor",
    }  # fmt: skip
    assert {p["name"]: p["reachable"] for p in doc["stack"]} == {
        "kafka": True, "redis": True, "keystore": True, "milvus": True,
    }  # fmt: skip


async def test_lag_cameras_and_keys_come_from_the_real_parts(api, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    client, settings, ctx = api
    gathered: list[str] = []
    real_collect = routes_ops.collect

    async def counting_collect(*args, **kwargs):  # type: ignore[no-untyped-def]
        status = await real_collect(*args, **kwargs)
        gathered.append(status.generated_at)
        return status

    monkeypatch.setattr(routes_ops, "collect", counting_collect)
    # 10 camera reports on one partition; the monitor's group commits after the first 4.
    producer = make_producer(settings, "test")
    await producer.start()
    try:
        metas = [
            await producer.send_and_wait(topics.CAMERA_STATS, b"{}", key=b"cam-lag", partition=0)
            for _ in range(10)
        ]
    finally:
        await producer.stop()
    first = metas[0].offset
    consumer = make_consumer(settings, group_id=settings.monitor.app_id, client_suffix="test")
    await consumer.start()
    try:
        tp = TopicPartition(topics.CAMERA_STATS, 0)
        consumer.assign([tp])
        await consumer.commit({tp: first + 4})
    finally:
        await consumer.stop()

    await write_status(
        ctx.redis,
        settings,
        [{"camera_id": "cam-ok", "deployment_id": "dep-1", "connected": True, "state": "connected",
          "input_fps": 25.0, "analysed_fps": 5.0, "last_frame_age_s": 0.1, "reconnects": 0},
         {"camera_id": "cam-down", "deployment_id": "dep-1", "connected": False, "state": "reconnecting",
          "input_fps": 0.0, "analysed_fps": 0.0, "last_frame_age_s": 40.0, "reconnects": 3}],
        replica=0,
    )  # fmt: skip
    await records.put_doc(
        ctx.redis,
        records.camera_key(settings, "cam-quiet"),
        {"camera_id": "cam-quiet", "deployment_id": "dep-1", "silent": True, "silent_since_ms": 1.8e12,
         "last_minute": {"minute_ms": 1.8e12, "frames": 0, "analysed": 0, "faces": 0, "crops": 0}},
        60,
    )  # fmt: skip
    keystore = make_keystore_redis(settings)
    try:
        await keystore.set(rkey(settings, "cropkey", "k-test"), b"x" * 32, ex=100)
        await ctx.redis.set(rkey(settings, "alertkey", "dep-1"), b"wrapped", ex=5000)
        r = await client.get("/api/v1/ops/status", headers=_h("ops"))
    finally:
        await keystore.delete(rkey(settings, "cropkey", "k-test"))
        await keystore.aclose()
    doc = r.json()

    monitor = next(g for g in doc["groups"] if g["group"] == settings.monitor.app_id)
    p0 = next(p for p in monitor["partitions"] if p["topic"] == topics.CAMERA_STATS and p["partition"] == 0)
    assert p0["committed"] == first + 4
    assert p0["end"] >= metas[-1].offset + 1
    assert p0["lag"] == p0["end"] - (first + 4)
    assert monitor["lag"] >= 6
    # Every group LFR runs is reported, the gallery import workers' included (LfrGalleryImportStalled).
    imports = next(g for g in doc["groups"] if g["group"] == topics.GALLERY_IMPORT_GROUP)
    assert imports["role"] == "gallery-import" and imports["topics"] == [topics.GALLERY_IMPORT]
    assert imports["lag"] == sum(p["lag"] for p in imports["partitions"])

    health = {c["camera_id"]: c["health"] for c in doc["cameras"]}
    assert health["cam-ok"] == "ok"
    assert health["cam-down"] == "disconnected"
    assert health["cam-quiet"] == "silent"
    assert doc["healthy"] is False

    assert doc["keys"]["crop_keys"] >= 1
    assert all(0 < t <= 100 for t in doc["keys"]["crop_key_ttl_s"])
    dep = next(k for k in doc["keys"]["alert_keys"] if k["deployment_id"] == "dep-1")
    assert 4000 < dep["ttl_s"] <= 5000
    assert "wrapped" not in json.dumps(doc)

    # Within two seconds a replica answers from its last status; later, rates use the previous sample.
    import asyncio

    cached = (await client.get("/api/v1/ops/status", headers=_h("ops"))).json()
    assert cached == doc and len(gathered) == 1
    await asyncio.sleep(2.1)
    again = (await client.get("/api/v1/ops/status", headers=_h("ops"))).json()
    assert len(gathered) == 2
    rates = {t["topic"]: t["records_per_s"] for t in again["throughput"]}
    assert rates[topics.CAMERA_STATS] is not None


async def test_crop_keys_are_not_counted_where_no_key_store_is_configured(settings_for) -> None:  # type: ignore[no-untyped-def]
    from lfr.core.redis_client import make_redis
    from lfr.monitor.status import collect

    # A prefix of its own: the planted key must not look like the pipeline's crop keys to the test that
    # scans the shared persistent Redis's files for them (tests/integration/stack/test_key_store.py).
    settings: Settings = settings_for(redis={"keystore_url": "", "key_prefix": "ops-status-test:"})
    assert settings.keystore_redis_url == settings.redis_url
    redis = make_redis(settings)
    try:
        await redis.set(rkey(settings, "cropkey", "in-the-main-redis"), b"x", ex=60)
        status = await collect(settings, redis, redis)
    finally:
        await redis.aclose()
    assert status.keys.crop_keys_visible is False
    assert status.keys.crop_keys == 0 and status.keys.crop_key_ttl_s == []
