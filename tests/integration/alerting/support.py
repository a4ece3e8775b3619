"""Helpers shared by the alerting integration and browser tests (loaded by their conftest files).

Hits are built the way the embedder builds them (derived hit ids, probe sealed under the alert-retention
key with the crop's AAD), the alerting service runs in-process with its real Stage, and the API runs under
uvicorn on a free loopback port with the alert and console routers.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import cv2
import httpx
import numpy as np
import uvicorn
from aiokafka import AIOKafkaConsumer, TopicPartition
from fastapi import FastAPI

from lfr.alerting.service import AlertingService
from lfr.api.context import ApiContext, SubjectLookup
from lfr.core import topics
from lfr.core.bus import make_consumer, make_producer
from lfr.core.config import Settings
from lfr.core.crypto import DeploymentAlertKeys, probe_aad
from lfr.core.ids import hit_id
from lfr.core.redis_client import make_redis
from lfr.core.serde import encode
from lfr.core.timeutil import now_ms, ts_from_ms
from lfr.v1.alert_pb2 import Alert
from lfr.v1.hit_pb2 import Hit
from lfr.watchlist.deployments import Deployment, DeploymentStatus, DeploymentStore

OPERATOR_TOKEN = "operator-token-for-tests"
AUDITOR_TOKEN = "auditor-token-for-tests"
OFFICER = "pc-4711"

# The API app under test: the local assembly below, or lfr.api.app.create_app once it assembles every
# router (LFR_TEST_API_APP=create_app switches without touching the tests).
USE_CREATE_APP = os.environ.get("LFR_TEST_API_APP", "local") == "create_app"


def settings_with(stack: Settings, **overrides: Any) -> Settings:
    """Like the settings_for fixture, usable from module-scoped fixtures: unique prefix and group."""
    data = stack.model_dump()
    tag = uuid.uuid4().hex[:8]
    data["redis"]["key_prefix"] = f"lfr-test-{tag}:"
    data["alerting"]["group_id"] = f"lfr-alerting-test-{tag}"
    data["api"]["api_keys"] = [
        {"name": OFFICER, "key": OPERATOR_TOKEN, "roles": ["operator"]},
        {"name": "auditor-1", "key": AUDITOR_TOKEN, "roles": ["auditor"]},
    ]
    for k, v in overrides.items():
        if isinstance(v, dict) and isinstance(data.get(k), dict):
            data[k].update(v)
        else:
            data[k] = v
    return Settings(**data)


def face_jpeg(seed: int, size: int = 160) -> bytes:
    """A small synthetic face-like JPEG: distinct per seed, so a test can tell probe from reference."""
    rng = np.random.default_rng(seed)
    img = np.full((size, size, 3), 40, np.uint8)
    skin = tuple(int(x) for x in rng.integers(120, 230, 3))
    c = size // 2
    cv2.ellipse(img, (c, c), (size // 3, int(size / 2.4)), 0, 0, 360, skin, -1)
    for dx in (-size // 7, size // 7):
        cv2.circle(img, (c + dx, c - size // 10), size // 22, (30, 30, 30), -1)
    cv2.ellipse(img, (c, c + size // 5), (size // 8, size // 20), 0, 0, 180, (60, 40, 160), 3)
    cv2.putText(img, str(seed % 100), (6, size - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 85])
    assert ok
    return bytes(buf)


@dataclass
class HitMaker:
    settings: Settings
    keys: DeploymentAlertKeys = field(init=False)
    jpeg: bytes = field(default_factory=lambda: face_jpeg(1))
    registered: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        # As the embedder does: probes sealed under the deployment's alert key, held in the test's Redis.
        self.keys = DeploymentAlertKeys(self.settings, make_redis(self.settings))

    async def register(self, deployment_id: str) -> None:
        """A running deployment under the test's own id (alerting refuses hits of unknown deployments); a
        deployment the test created for real is left as it is."""
        if deployment_id in self.registered:
            return
        store = DeploymentStore(self.settings, self.keys.redis)
        if await store.get(deployment_id) is not None:
            self.registered.add(deployment_id)
            return
        now = datetime.now(UTC)
        dep = Deployment(
            deployment_id=deployment_id,
            name="alerting test",
            location="test bench",
            purpose="alerting test",
            starts_at=now - timedelta(days=7),
            ends_at=now + timedelta(days=7),
            authorising_officer="Supt Test",
            watchlist_ids=["wl-test"],
            status=DeploymentStatus.RUNNING,
            embedder_model="test-model",
            created_by="test",
            created_at=now,
            updated_at=now,
            started_by="test",
            started_at=now - timedelta(days=7),
        )
        await store._save(dep)
        self.registered.add(deployment_id)

    async def seal(self, jpeg: bytes, crop_id: str, deployment_id: str):  # type: ignore[no-untyped-def]
        return await self.keys.seal(deployment_id, jpeg, probe_aad(crop_id, deployment_id))

    async def hit(
        self,
        deployment_id: str,
        subject_id: str,
        crop_id: str,
        camera_id: str = "cam-1",
        captured_ms: int | None = None,
        score: float = 0.8,
        watchlist_id: str = "wl-test",
        category: str = "wanted",
        threshold: float = 0.6,
        jpeg: bytes | None = None,
    ) -> Hit:
        at = captured_ms if captured_ms is not None else now_ms()
        await self.register(deployment_id)
        return Hit(
            hit_id=hit_id(crop_id, subject_id),
            crop_id=crop_id,
            deployment_id=deployment_id,
            camera_id=camera_id,
            track_id=f"t-{crop_id}",
            subject_id=subject_id,
            watchlist_id=watchlist_id,
            score=score,
            threshold=threshold,
            rank=1,
            embedder_model_id="test-model",
            captured_at=ts_from_ms(at),
            probe=await self.seal(jpeg or self.jpeg, crop_id, deployment_id),
            category=category,
            hit_at=ts_from_ms(now_ms()),
        )


class HitProducer:
    def __init__(self, settings: Settings) -> None:
        self.producer = make_producer(settings, "test-hits")

    async def __aenter__(self) -> HitProducer:
        await self.producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.producer.stop()

    async def send(self, hits: Iterable[Hit], wait: bool = True) -> list[Any]:
        futures = [
            await self.producer.send(topics.HITS, encode(h), key=h.deployment_id.encode()) for h in hits
        ]
        if wait:
            return list(await asyncio.gather(*futures))
        return futures

    async def send_raw(self, value: bytes, key: bytes) -> Any:
        return await self.producer.send_and_wait(topics.HITS, value, key=key)


async def skip_to_end(settings: Settings, group_id: str) -> None:
    """Commit the group at the current end of lfr.hits.v1, so a test's service does not reprocess every
    earlier test's hits (harmless, only slow). An end reported a little early only means re-reading."""
    consumer = make_consumer(settings, group_id=group_id, client_suffix="test-skip")
    await consumer.start()
    try:
        parts = consumer.partitions_for_topic(topics.HITS) or set()
        if not parts:
            await consumer._client.force_metadata_update()
            parts = consumer.partitions_for_topic(topics.HITS) or set()
        tps = [TopicPartition(topics.HITS, p) for p in sorted(parts)]
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        offsets = {tp: await consumer.position(tp) for tp in tps}
        await consumer.commit(offsets)
    finally:
        await consumer.stop()


@contextlib.asynccontextmanager
async def alerting_running(settings: Settings, skip_old: bool = True) -> AsyncIterator[AlertingService]:
    """The alerting service in-process (Stage + webhook worker) until the block ends."""
    if skip_old:
        await skip_to_end(settings, settings.alerting.group_id)
    redis = make_redis(settings)
    service = AlertingService(settings, redis)
    task = asyncio.create_task(service.run())
    try:
        deadline = time.monotonic() + 60
        while True:
            consumer = service.stage._consumer  # readiness = partitions assigned
            if service.stage.ready and consumer is not None and consumer.assignment():
                break
            if task.done():
                task.result()
            if time.monotonic() > deadline:
                raise TimeoutError("alerting stage got no partitions within 60 s")
            await asyncio.sleep(0.1)
        yield service
    finally:
        service.stop()
        try:
            await asyncio.wait_for(task, timeout=30)
        finally:
            await redis.aclose()


# Where a subscriber finds every revision of an alert: raised on one topic, its later history on the other.
ALERT_TOPICS = (topics.ALERTS, topics.ALERT_UPDATES)
ALERT_MIRRORS = (topics.ALERTS_JSON, topics.ALERT_UPDATES_JSON)


class AlertTail:
    """Follows lfr.alerts.v1 (or other topics) from a position, recording arrival times."""

    def __init__(
        self,
        settings: Settings,
        topic: str | tuple[str, ...] = topics.ALERTS,
        from_beginning: bool = True,
    ) -> None:
        self.settings = settings
        self.topics = (topic,) if isinstance(topic, str) else topic
        self.from_beginning = from_beginning
        self.records: list[tuple[float, bytes]] = []
        self.record_topics: list[str] = []
        self._c: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> AlertTail:
        self._started_ms = now_ms()
        self._c = make_consumer(self.settings, group_id=None, client_suffix="test-tail", fetch_max_wait_ms=20)
        await self._c.start()
        tps = [
            TopicPartition(t, p)
            for t in self.topics
            for p in sorted(self._c.partitions_for_topic(t) or set())
        ]
        self._c.assign(tps)
        if self.from_beginning:
            await self._c.seek_to_beginning(*tps)
        else:
            await self._c.seek_to_end(*tps)
            for tp in tps:
                await self._c.position(tp)
        self._task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        assert self._c is not None
        while True:
            batch = await self._c.getmany(timeout_ms=20, max_records=5000)
            now = time.monotonic()
            for recs in batch.values():
                for r in recs:
                    if not self.from_beginning and r.timestamp < self._started_ms:
                        continue  # Tansu's "latest" offset can sit below the real end (toolchain.md)
                    self.records.append((now, r.value))
                    self.record_topics.append(r.topic)

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._c is not None:
            await self._c.stop()

    def alerts(
        self, deployments: set[str] | None = None, topic: str | None = None
    ) -> list[tuple[float, Alert]]:
        out = []
        for (t, v), where in zip(self.records, self.record_topics, strict=True):
            if topic is not None and where != topic:
                continue
            a = Alert()
            a.ParseFromString(v)
            if deployments is None or a.deployment_id in deployments:
                out.append((t, a))
        return out

    async def wait_until(self, done: Callable[[], bool], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not done():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
            await asyncio.sleep(0.05)


def local_app(settings: Settings) -> FastAPI:
    """The API with the alert and console routers, built like lfr.api.app.create_app builds its app."""
    if USE_CREATE_APP:
        from lfr.api.app import create_app

        return create_app(settings)
    from lfr.api import routes_alerts, routes_console

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.ctx = await ApiContext.start(settings)
        try:
            yield
        finally:
            await app.state.ctx.close()

    app = FastAPI(lifespan=lifespan)
    app.state.settings = settings
    app.include_router(routes_alerts.router)
    app.include_router(routes_console.router)
    return app


@dataclass
class ApiServer:
    base_url: str
    app: FastAPI

    @property
    def ctx(self) -> ApiContext:
        ctx: ApiContext = self.app.state.ctx
        return ctx

    def client(self, token: str | None = OPERATOR_TOKEN, **kwargs: Any) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=30, **kwargs)


class FakeWatchlist:
    """Stands in for the watchlist store behind the API context's subject lookup."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, subject_id: str, watchlist_id: str) -> dict[str, Any] | None:
        self.calls += 1
        if subject_id.startswith("unknown"):
            return None
        seed = sum(subject_id.encode()) + 1000
        return {
            "subject_id": subject_id,
            "watchlist_id": watchlist_id,
            "display_name": f"Person {subject_id}",
            "thumbnail": base64.b64encode(face_jpeg(seed)).decode(),
        }


@contextlib.asynccontextmanager
async def api_running(
    settings: Settings, subject_lookup: SubjectLookup | None = None
) -> AsyncIterator[ApiServer]:
    app = local_app(settings)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, lifespan="on", log_level="warning", access_log=False, timeout_graceful_shutdown=2
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            if task.done():
                task.result()
            if time.monotonic() > deadline:
                raise TimeoutError("API did not start within 30 s")
            await asyncio.sleep(0.05)
        if subject_lookup is not None:
            app.state.ctx.subject_lookup = subject_lookup
        yield ApiServer(f"http://127.0.0.1:{port}", app)
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, timeout=15)
        sock.close()


class SseReader:
    """Reads an SSE stream in the background and records each event with its arrival time."""

    def __init__(self, client: httpx.AsyncClient, path: str, params: dict[str, str] | None = None) -> None:
        self.client = client
        self.path = path
        self.params = params
        self.events: list[tuple[float, str, dict[str, Any]]] = []
        self.status: int | None = None
        self.headers: httpx.Headers | None = None
        self._task: asyncio.Task[None] | None = None
        self._open = asyncio.Event()

    async def __aenter__(self) -> SseReader:
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self._open.wait(), timeout=15)
        return self

    async def _run(self) -> None:
        try:
            async with self.client.stream("GET", self.path, params=self.params, timeout=None) as resp:
                self.status = resp.status_code
                self.headers = resp.headers
                self._open.set()
                if resp.status_code != 200:
                    return
                event = "message"
                data: list[str] = []
                async for line in resp.aiter_lines():
                    if line == "":
                        if data:
                            self.events.append((time.monotonic(), event, json.loads("\n".join(data))))
                        event, data = "message", []  # a blank line ends an event
                    elif line.startswith("event:"):
                        event = line[6:].strip()
                    elif line.startswith("data:"):
                        data.append(line[5:].strip())
        finally:
            self._open.set()

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
                await self._task

    def alert_events(self) -> list[tuple[float, dict[str, Any]]]:
        return [(t, d) for t, e, d in self.events if e == "alert"]

    def snapshots(self) -> list[dict[str, Any]]:
        return [d for _, e, d in self.events if e == "snapshot"]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    idx = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[idx]


@dataclass
class Delivery:
    at: float
    headers: dict[str, str]
    body: bytes

    @property
    def doc(self) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(self.body)
        return doc


class WebhookReceiver:
    """A subscriber's endpoint on a fixed loopback port that can go down (connection refused) and up."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.deliveries: list[Delivery] = []
        self._runner: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def start(self) -> None:
        from aiohttp import web

        async def hook(request: web.Request) -> web.Response:
            self.deliveries.append(Delivery(time.monotonic(), dict(request.headers), await request.read()))
            return web.Response(status=204)

        app = web.Application()
        app.add_routes([web.post("/hook", hook)])
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def latest_revisions(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for d in self.deliveries:
            a = d.doc["alert"]
            out[a["alert_id"]] = max(out.get(a["alert_id"], 0), int(a["revision"]))
        return out


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
