"""End to end through real processes: FaceCrop -> `lfr embed` -> Hit -> `lfr alert` -> Alert.

Real broker, Redis, Milvus Lite and the real models. A crop of an enrolled person (a different photo from
the enrolment photo) must come out as an Alert; a crop of a person not enrolled must leave nothing
behind: no record on any topic, no Redis key or value, no Milvus row, no log line that names it.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from lfr.core import stats, topics
from lfr.core.bus import make_producer
from lfr.core.config import Settings
from lfr.core.crypto import CropKeyring, crop_aad
from lfr.core.observability import find_services
from lfr.core.redis_client import make_redis
from lfr.core.serde import SerdeError, decode, encode
from lfr.core.timeutil import ts_now
from lfr.v1.alert_pb2 import Alert
from lfr.v1.common_pb2 import BoundingBox, Point
from lfr.v1.crop_pb2 import FaceCrop
from lfr.vision import FaceAnalyzer
from lfr.watchlist.store import SubjectMeta, WatchlistStore

pytestmark = [pytest.mark.integration]
REPO = Path(__file__).resolve().parents[2]


def _image(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert img is not None, path
    return img


async def _crop(
    settings: Settings,
    analyzer: FaceAnalyzer,
    keyring: CropKeyring,
    image: np.ndarray,
    deployment_id: str,
    crop_id: str,
) -> FaceCrop:
    face = analyzer.enrol(image)
    jpeg = cv2.imencode(".jpg", face.chip, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
    x, y, w, h = face.detection.bbox
    return FaceCrop(
        crop_id=crop_id,
        deployment_id=deployment_id,
        camera_id="cam-e2e",
        track_id=f"t-{crop_id}",
        captured_at=ts_now(),
        bbox=BoundingBox(x=x, y=y, width=w, height=h),
        landmarks=[Point(x=float(px), y=float(py)) for px, py in face.detection.landmarks],
        detector_score=face.detection.score,
        detector_model_id=analyzer.detector.model_id,
        chip=await keyring.encrypt(jpeg, crop_aad(crop_id, "cam-e2e", deployment_id)),
        chip_size=face.chip.shape[0],
    )


def _service(settings: Settings, name: str, log_path: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "LFR_DATA_DIR": str(settings.data_dir),
        "LFR_KAFKA__BOOTSTRAP_SERVERS": settings.kafka_bootstrap,
        "LFR_REDIS__URL": settings.redis_url,
        "LFR_REDIS__KEYSTORE_URL": settings.keystore_redis_url,
        "LFR_REDIS__KEY_PREFIX": settings.redis.key_prefix,
        "LFR_MILVUS__URI": settings.milvus_uri,
        "LFR_MODELS__DIR": str(settings.models_dir),
        "LFR_EMBEDDER__GROUP_ID": f"e2e-embed-{settings.redis.key_prefix}",
        "LFR_ALERTING__GROUP_ID": f"e2e-alert-{settings.redis.key_prefix}",
        "LFR_OBSERVABILITY__LOG_LEVEL": "DEBUG",
    }
    out = open(log_path, "wb")
    return subprocess.Popen(
        [sys.executable, "-m", "lfr.cli", name], env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO
    )


async def _all_topic_bytes(settings: Settings) -> bytes:
    c = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)
    await c.start()
    try:
        tps = [TopicPartition(t, p) for t in (await c.topics()) for p in (c.partitions_for_topic(t) or ())]
        c.assign(tps)
        await c.seek_to_beginning(*tps)
        chunks: list[bytes] = []
        while True:
            batch = await c.getmany(timeout_ms=1500, max_records=10000)
            if not batch:
                return b"".join(chunks)
            for recs in batch.values():
                chunks.extend((r.key or b"") + (r.value or b"") for r in recs)
    finally:
        await c.stop()


async def _all_redis_bytes(settings: Settings) -> bytes:
    redis = make_redis(settings)
    chunks: list[bytes] = []
    try:
        async for key in redis.scan_iter(count=1000):
            chunks.append(key)
            kind = (await redis.type(key)).decode()
            if kind == "string":
                chunks.append(await redis.get(key) or b"")
            elif kind == "hash":
                for k, v in (await redis.hgetall(key)).items():
                    chunks += [k, v]
            elif kind == "set":
                chunks.extend(await redis.smembers(key))
            elif kind == "zset":
                chunks.extend(m for m, _ in await redis.zrange(key, 0, -1, withscores=True))
            elif kind == "list":
                chunks.extend(await redis.lrange(key, 0, -1))
        return b"".join(chunks)
    finally:
        await redis.aclose()


async def _wait_alert(settings: Settings, deployment_id: str, timeout_s: float) -> Alert:
    c = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)
    await c.start()
    try:
        parts = c.partitions_for_topic(topics.ALERTS) or set()
        tps = [TopicPartition(topics.ALERTS, p) for p in parts]
        c.assign(tps)
        await c.seek_to_beginning(*tps)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for recs in (await c.getmany(timeout_ms=500)).values():
                for r in recs:
                    try:
                        alert = decode(Alert, r.value)
                    except SerdeError:
                        continue  # other tests put deliberately corrupt records on shared topics
                    if alert.deployment_id == deployment_id:
                        return alert
        raise AssertionError(f"no alert for {deployment_id} within {timeout_s}s")
    finally:
        await c.stop()


async def test_match_becomes_alert_and_non_match_leaves_nothing(
    settings_for, face_data: Path, models_dir: Path, tmp_path: Path, live_deployment
) -> None:
    settings: Settings = settings_for()
    demo = face_data / "face_recognition_demo"
    analyzer = FaceAnalyzer(settings)
    card = analyzer.embedder.card
    wl = f"wl-{uuid.uuid4().hex[:8]}"
    store = WatchlistStore(settings, card)
    enrol_img = _image(demo / "known_people" / "obama" / "obama.jpg")
    face = analyzer.enrol(enrol_img)
    store.upsert_subject(
        SubjectMeta(subject_id="subj-obama", watchlist_id=wl, display_name="Barack Obama"),
        face.embedding,
        hashlib.sha256(enrol_img.tobytes()).hexdigest(),
    )
    rows_before = store.count([wl])

    redis = make_redis(settings)
    producer = make_producer(settings, "e2e")
    await producer.start()
    procs: list[subprocess.Popen[bytes]] = []
    logs = {n: tmp_path / f"{n}.log" for n in ("embed", "alert")}
    try:
        deployment_id = await live_deployment(settings, (wl,))

        keyring = CropKeyring(settings)  # the memory-only key store
        stranger_id = f"stranger-{uuid.uuid4().hex}"
        match_id = f"match-{uuid.uuid4().hex}"
        stranger = await _crop(
            settings,
            analyzer,
            keyring,
            _image(demo / "known_people" / "biden" / "biden.jpg"),
            deployment_id,
            stranger_id,
        )
        match = await _crop(
            settings,
            analyzer,
            keyring,
            _image(demo / "known_people" / "obama" / "obama2.jpg"),
            deployment_id,
            match_id,
        )
        for crop in (stranger, match):
            await producer.send_and_wait(topics.CROPS, encode(crop), key=crop.camera_id.encode())

        procs = [_service(settings, "embed", logs["embed"]), _service(settings, "alert", logs["alert"])]
        alert = await _wait_alert(settings, deployment_id, timeout_s=120)
        assert alert.subject.subject_id == "subj-obama"
        assert alert.camera_ids == ["cam-e2e"] and alert.hit_count >= 1
        assert 0 < alert.best_score <= 1 and alert.alert_id

        # Each service process serves its health and metrics (found through its run file in the data dir).
        services = {
            d["service"]: d for d in find_services(settings.data_dir) if d["pid"] in {p.pid for p in procs}
        }
        assert set(services) == {"embedder", "alerting"}
        async with httpx.AsyncClient(timeout=5) as http:
            for name, doc in services.items():
                assert (await http.get(doc["health_url"] + "/healthz")).status_code == 200
                ready = await http.get(doc["health_url"] + "/readyz")
                assert ready.status_code == 200, (name, ready.text)
                metrics = (await http.get(doc["health_url"] + "/metrics")).text
                assert "lfr_stage_records_total" in metrics

        for _ in range(60):  # the embedder counts both crops once their batch is committed
            counts = await stats.totals(redis, settings, deployment_id)
            if counts.get(stats.FACES_ANALYSED, 0) >= 2:
                break
            await asyncio.sleep(0.5)
        assert counts[stats.FACES_ANALYSED] == 2
        assert counts[stats.CROPS_DISCARDED] == 1 and counts[stats.HITS] >= 1
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        await producer.stop()
        await redis.aclose()

    assert all(p.returncode == 0 for p in procs), {n: logs[n].read_text()[-2000:] for n in logs}
    # The only record that names the stranger is the encrypted crop the test itself produced.
    topic_bytes = await _all_topic_bytes(settings)
    assert topic_bytes.count(stranger_id.encode()) == encode(stranger).count(stranger_id.encode())
    assert topic_bytes.count(match_id.encode()) > 1  # the hit and the alert refer to the match
    assert stranger_id.encode() not in await _all_redis_bytes(settings)
    assert store.count([wl]) == rows_before
    for name, path in logs.items():
        text = path.read_text(errors="replace")
        assert stranger_id not in text, f"{name} logged the non-matching crop"
        assert "Barack Obama" not in text, f"{name} logged a subject name"
    store.close()
