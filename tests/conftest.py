"""Shared fixtures: the real embedded stack on free loopback ports, built models, and the face data.

The stack fixture starts the Tansu broker, a real redis-server and a Milvus Lite server once per session
in a temporary data dir (the same code as ``lfr stack up``) and stops exactly those processes at the end.

Face data comes in two kinds. ``face_data`` is the small tree every clone has: the committed photos and
videos of tests/fixtures/faces plus the sample photos of the pinned face_recognition sdist (tests/fixtures/
README.md names every file, its source and licence); tests that need real faces use it. ``shared_faces``
is the large shared evaluation data (``lfr.core.shared_data.shared_faces_dir``, ``$LFR_SHARED_FACES``);
only tests that measure on whole evaluation sets use it, and they skip without it
(tests/fresh_clone_skips.txt lists them).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiokafka import TopicPartition

from lfr.core import topics
from lfr.core.audit import AuditLog
from lfr.core.bus import make_consumer, make_producer
from lfr.core.config import Settings, load_settings
from lfr.core.redis_client import make_redis
from lfr.core.serde import SerdeError, decode
from lfr.core.shared_data import shared_faces_dir
from lfr.v1.crop_pb2 import FaceCrop

REPO = Path(__file__).resolve().parents[1]
MODELS_DIR = Path(os.environ.get("LFR_TEST_MODELS_DIR", REPO / ".lfr" / "models"))
FIXTURE_FACES = REPO / "tests" / "fixtures" / "faces"
FACE_DATA_CACHE = REPO / ".lfr" / "test-faces"
# Photos taken from the face_recognition==1.3.0 sdist (MIT; fetched and sha256-checked by the demo scene's
# fetcher) rather than committed: tree path -> the demo scene's photo name. They are byte-identical to the
# same paths in the shared data set.
REGISTRY_PHOTOS = {
    "face_recognition_demo/known_people/obama/obama.jpg": "obama",
    "face_recognition_demo/known_people/obama/obama2.jpg": "obama2",
    "face_recognition_demo/known_people/obama/obama3.jpg": "obama3",
    "face_recognition_demo/known_people/biden/biden.jpg": "biden",
    "face_recognition_demo/knn_examples/train/obama/obama.jpg": "obama",
    "face_recognition_demo/knn_examples/train/obama/obama2.jpg": "obama2",
    "face_recognition_demo/knn_examples/train/biden/biden.jpg": "biden",
}


def _fixture_fingerprint() -> str:
    """Names and sizes of the committed fixtures and the registry mapping: a changed set builds a new tree."""
    h = hashlib.sha256(repr(sorted(REGISTRY_PHOTOS.items())).encode())
    for path in sorted(p for p in FIXTURE_FACES.rglob("*") if p.is_file()):
        h.update(f"{path.relative_to(FIXTURE_FACES)}:{path.stat().st_size}\n".encode())
    return h.hexdigest()[:16]


def build_face_data(cache: Path = FACE_DATA_CACHE) -> Path:
    """The test face tree (committed fixtures plus registry photos), built once per fixture set.

    Why a built tree: the registry photos must not be committed twice, and tests address every file by its
    path in the shared data layout. Each fixture set gets its own folder, made under a temporary name and
    renamed into place, so concurrent test sessions never see a half-built tree.
    """
    from lfr.ingest.demo_scene import fetch_photos

    tree = cache / f"tree-{_fixture_fingerprint()}"
    if tree.is_dir():
        return tree
    cache.mkdir(parents=True, exist_ok=True)
    photos = fetch_photos(cache / "downloads")
    tmp = Path(tempfile.mkdtemp(prefix="building-", dir=cache))
    try:
        shutil.copytree(FIXTURE_FACES, tmp, dirs_exist_ok=True)
        for rel, name in REGISTRY_PHOTOS.items():
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp / rel).write_bytes(photos[name])
        try:
            tmp.rename(tree)
        except OSError:
            if not tree.is_dir():  # not another session's finished tree: a real failure
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return tree


@pytest.fixture(scope="session")
def face_data() -> Path:
    """The small face tree every clone has (same layout as the shared data; see tests/fixtures/README.md)."""
    from lfr.ingest.demo_scene import DemoSceneError

    try:
        return build_face_data()
    except DemoSceneError as exc:
        pytest.skip(f"test face photos could not be fetched from PyPI (needs network once): {exc}")


@pytest.fixture(scope="session")
def shared_faces() -> Path:
    """The large shared evaluation sets (LFW, CFP, the whole deepface set); absent from a fresh clone."""
    folder = shared_faces_dir()
    if not folder.is_dir():
        pytest.skip(
            f"shared face data not found at {folder} (a whole evaluation set; a fresh clone has none)"
        )
    return folder


@pytest.fixture(scope="session")
def models_dir() -> Path:
    """The project's built models (``lfr models build``; fast when already built by ``make setup``)."""
    from lfr.modelbuild import build_models

    build_models(MODELS_DIR)
    return MODELS_DIR


@pytest.fixture(scope="session")
def stack_settings() -> Iterator[Settings]:
    import shutil
    import tempfile

    from lfr.stack.local import LocalStack

    # Not under pytest's basetemp: a second pytest session on the same machine rotates those directories
    # and would delete the Milvus data of a session still running.
    data_dir = Path(tempfile.mkdtemp(prefix="lfr-test-stack-"))
    # The suite keeps the broker's memory engine and Milvus Lite for speed; the durable broker and the
    # Milvus standalone server have their own tests (tests/integration/stack).
    settings = load_settings(
        data_dir=data_dir,
        models={"dir": MODELS_DIR},
        kafka={"crops_partitions": 8, "hits_partitions": 4, "alerts_partitions": 4},
        stack={"broker_storage": "memory", "milvus": "lite"},
    )
    stack = LocalStack(settings)
    stack.up()
    state = stack.state()
    resolved = load_settings(
        data_dir=data_dir,
        models={"dir": MODELS_DIR},
        kafka={
            "bootstrap_servers": state["kafka"]["url"],
            "crops_partitions": 8,
            "hits_partitions": 4,
            "alerts_partitions": 4,
        },
        redis={"url": state["redis"]["url"], "keystore_url": state["keystore"]["url"]},
        milvus={"uri": state["milvus"]["url"]},
        stack={"broker_storage": "memory", "milvus": "lite"},
    )
    try:
        yield resolved
    finally:
        stack.down()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
def settings_for(stack_settings: Settings):
    """Settings for one test: the session's stack plus overrides; a unique Redis prefix isolates state."""
    import uuid

    def make(**overrides: object) -> Settings:
        data = stack_settings.model_dump()
        data["redis"]["key_prefix"] = f"lfr-test-{uuid.uuid4().hex[:8]}:"
        for k, v in overrides.items():
            if isinstance(v, dict) and isinstance(data.get(k), dict):
                data[k].update(v)
            else:
                data[k] = v
        return Settings(**data)

    return make


async def _live_deployment(settings: Settings, watchlist_ids: tuple[str, ...] = ("wl-test",)) -> str:
    """Create, authorise and start a deployment through the real store (audited), as an operator would."""
    from lfr.vision import find_card
    from lfr.watchlist.deployments import DeploymentSpec, DeploymentStore

    redis = make_redis(settings)
    producer = make_producer(settings, "test-setup")
    await producer.start()
    try:
        store = DeploymentStore(settings, redis, AuditLog(settings, producer, redis))
        now = datetime.now(UTC)
        spec = DeploymentSpec(
            name="test deployment",
            location="test bench",
            purpose="integration test",
            starts_at=now - timedelta(minutes=1),
            ends_at=now + timedelta(hours=1),
            authorising_officer="Supt Test",
            watchlist_ids=list(watchlist_ids),
        )
        dep = await store.create(spec, "test", find_card(settings.models_dir, settings.models.embedder))
        await store.authorise(dep.deployment_id, "Supt Test", "test")
        await store.start(dep.deployment_id, "test")
        return dep.deployment_id
    finally:
        await producer.stop()
        await redis.aclose()


async def _read_crops(
    settings: Settings, deployment_id: str, expect: int, timeout_s: float = 20.0
) -> list[FaceCrop]:
    """Every crop of ``deployment_id`` on lfr.crops.v1 (all partitions, from the beginning)."""
    consumer = make_consumer(settings, group_id=None, client_suffix="test-read")
    await consumer.start()
    try:
        parts = consumer.partitions_for_topic(topics.CROPS) or set()
        tps = [TopicPartition(topics.CROPS, p) for p in sorted(parts)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        found: dict[str, FaceCrop] = {}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while len(found) < expect and loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for r in records:
                    try:
                        crop = decode(FaceCrop, r.value)
                    except SerdeError:
                        continue  # other tests put deliberately corrupt records on shared topics
                    if crop.deployment_id == deployment_id:
                        assert r.key == crop.camera_id.encode(), "crops are keyed by camera_id"
                        found[crop.crop_id] = crop
        return list(found.values())
    finally:
        await consumer.stop()


@pytest.fixture
def live_deployment():  # type: ignore[no-untyped-def]
    return _live_deployment


@pytest.fixture
def read_crops():  # type: ignore[no-untyped-def]
    return _read_crops
