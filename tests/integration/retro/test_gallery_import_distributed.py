"""Distributed gallery import on the real embedded stack: `lfr gallery worker` processes in one consumer
group, one of them SIGKILLed mid-import and restarted, and the gallery ends with one row per image.

A submission interrupted after its first acknowledged chunk continues from there. The import tree is the
test face photos copied under many record folders (distinct paths, real faces), plus
two photos with no face in them, which must be counted as failed to enrol and never become rows.

Every submission, its failure and the job's end are on the hash-chained audit log (this module's Redis key
prefix keeps its own chain head), and the chain still verifies.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np
import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from lfr.core import topics
from lfr.core.audit import AuditLog, read_all
from lfr.core.bus import make_producer
from lfr.core.config import Settings
from lfr.core.images import list_images
from lfr.core.redis_client import make_redis
from lfr.core.serde import decode, encode
from lfr.retro import import_audit, local_import
from lfr.retro.gallery import Gallery, GalleryError
from lfr.retro.import_jobs import JobStore, records_for
from lfr.retro.import_submit import job_status, list_items, submit_import
from lfr.retro.import_worker import ImportHandler
from lfr.retro.local_import import audited_import
from lfr.v1.audit_pb2 import AuditEvent
from lfr.v1.dead_letter_pb2 import DeadLetter
from lfr.v1.gallery_import_pb2 import GalleryImportItem
from lfr.vision import FaceAnalyzer
from lfr.watchlist.audit_trail import AuditTrail

pytestmark = [pytest.mark.integration]
REPO = Path(__file__).resolve().parents[3]
PHOTO_DIRS = (
    "face_recognition_demo/known_people",
    "facenet_pytorch_samples/test_images",
    "deepface_testset/images",
)
COPIES = 5
NO_FACE = 2
ACTOR = "custody-import-officer"
REASON = "Custody image sharing approval CIS-2026-114 (test)"


@pytest.fixture(scope="module")
def settings(stack_settings: Settings, models_dir: Path) -> Settings:
    data = stack_settings.model_dump()
    data["redis"]["key_prefix"] = f"lfr-gimport-{uuid.uuid4().hex[:8]}:"
    data["models"]["dir"] = models_dir
    return Settings(**data)


@pytest.fixture(scope="module")
def analyzer(settings: Settings) -> FaceAnalyzer:
    return FaceAnalyzer(settings)


@pytest.fixture(scope="module")
def tree(face_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """COPIES copies of every test photo, each copy under its own record folder, plus no-face photos."""
    root = tmp_path_factory.mktemp("custody")
    photos = [p for d in PHOTO_DIRS for p in list_images(face_data / d)]
    assert len(photos) >= 10
    for c in range(COPIES):
        for i, p in enumerate(photos):
            dest = root / f"rec{c:02d}{i:03d}" / p.name
            dest.parent.mkdir()
            shutil.copyfile(p, dest)
    blank = np.full((600, 800, 3), 128, np.uint8)  # not square: searched as a scene, so no fallback face
    for i in range(NO_FACE):
        (root / f"empty{i}").mkdir()
        cv2.imwrite(str(root / f"empty{i}" / "wall.jpg"), blank)
    return root


def _gallery(settings: Settings, analyzer: FaceAnalyzer) -> Iterator[Gallery]:
    g = Gallery(settings, f"imp_{uuid.uuid4().hex[:8]}", analyzer.embedder.card)
    try:
        yield g
    finally:
        g.drop()
        g.close()


@pytest.fixture
def gallery(settings: Settings, analyzer: FaceAnalyzer) -> Iterator[Gallery]:
    yield from _gallery(settings, analyzer)


def _items_in(g: Gallery) -> list[str]:
    rows = g.client.query(g.collection, filter='pk != ""', output_fields=["item"], limit=16_384)
    return [str(r["item"]) for r in rows]


def _env(settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "LFR_DATA_DIR": str(settings.data_dir),
        "LFR_MODELS__DIR": str(settings.models_dir),
        "LFR_KAFKA__BOOTSTRAP_SERVERS": settings.kafka_bootstrap,
        "LFR_REDIS__URL": settings.redis.url,
        "LFR_REDIS__KEYSTORE_URL": settings.redis.keystore_url,
        "LFR_REDIS__KEY_PREFIX": settings.redis.key_prefix,
        "LFR_MILVUS__URI": settings.milvus.uri,
    }


def _worker(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as fh:
        return subprocess.Popen(
            [sys.executable, "-m", "lfr.cli", "gallery", "worker"],
            cwd=REPO,
            env=_env(settings),
            stdout=fh,
            stderr=subprocess.STDOUT,
        )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


async def _wait_done(settings: Settings, job: str, at_least: int, timeout_s: float, procs: Sequence) -> int:
    deadline = time.monotonic() + timeout_s
    while True:
        done = (await job_status(settings, job)).done
        if done >= at_least:
            return done
        dead = [p.args for p in procs if p.poll() is not None]
        assert not dead, f"worker exited early: {dead}"
        assert time.monotonic() < deadline, f"{done} < {at_least} images done within {timeout_s}s"
        await asyncio.sleep(0.5)


@pytest.mark.long
async def test_killed_worker_restarted_enrols_every_image_exactly_once(
    settings: Settings, analyzer: FaceAnalyzer, gallery: Gallery, tree: Path, tmp_path: Path
) -> None:
    total = len(list_images(tree))
    status = await submit_import(
        settings, tree, gallery.name, analyzer.embedder.card, actor=ACTOR, reason=REASON, chunk=50
    )
    job = status.spec.job_id
    assert status.spec.total == total and status.counters["submitted"] == total and status.done == 0
    logs = tmp_path / "workers.log"
    a, b = _worker(settings, logs), _worker(settings, logs)
    procs = [a, b]
    try:
        killed_at = await _wait_done(settings, job, total // 4, 240, procs)
        a.send_signal(signal.SIGKILL)  # mid-batch, with no chance to commit or clean up
        a.wait(10)
        procs = [b]
        assert killed_at < total, "the import finished before the kill: make the tree larger"
        restarted = _worker(settings, logs)
        procs = [b, restarted]
        await _wait_done(settings, job, total, 300, procs)
    finally:
        for p in procs:
            _stop(p)
    final = await job_status(settings, job)
    c = final.counters
    items = _items_in(gallery)
    print(
        f"\n{total} images, killed at {killed_at} done, final {c}, {final.as_dict()['images_per_s']} images/s"
    )
    assert final.finished and final.done == total
    assert c["failed"] == c["failed_no_face"] == NO_FACE
    assert c["enrolled"] == total - NO_FACE
    assert gallery.count() == total - NO_FACE == len(items)
    assert sorted(items) == sorted(i for i in list_items(tree)[1] if not i.startswith("empty"))
    assert sorted(await _failed(settings, job)) == [f"empty{i}/wall.jpg" for i in range(NO_FACE)]
    shown = await _lfr(settings, "gallery", "import-status", job, "--json", "--failed", "5", limit_s=60)
    assert shown.returncode == 0, shown.stderr
    d = json.loads(shown.stdout)
    assert (d["state"], d["done"], d["total"], d["enrolled"], d["eta_s"]) == (
        "finished",
        total,
        total,
        total - 2,
        0,
    )
    assert d["images_per_s"] > 0 and sorted(d["failed_items"]) == ["empty0/wall.jpg", "empty1/wall.jpg"]
    assert d["submitted_by"] == ACTOR
    # Audited: the submission (who, why, how many, which listing) and, once, the job's end with its counters.
    events = await _job_audit(settings, job)
    assert [(e.actor, e.action) for e in events] == [
        (ACTOR, import_audit.SUBMIT),
        (import_audit.WORKER_ACTOR, import_audit.FINISHED),
    ]
    submitted, finished = events
    assert (submitted.target, submitted.reason) == (f"gallery:{gallery.name}", REASON)
    root, listing = list_items(tree)
    manifest = import_audit.manifest_sha256(listing)
    assert dict(submitted.details) == {
        "job_id": job,
        "gallery": gallery.name,
        "items": str(total),
        "manifest_sha256": manifest,
        "model": analyzer.embedder.card.model_id,
        "root": str(root),
        "resumed_from": "0",
    }
    assert (finished.details["submitted_by"], finished.details["manifest_sha256"]) == (ACTOR, manifest)
    assert (finished.details["enrolled"], finished.details["failed_no_face"]) == (str(total - NO_FACE), "2")
    assert not any(i in v for e in events for v in e.details.values() for i in listing), "no image paths"
    await _assert_chain_verifies(settings)


async def _lfr(settings: Settings, *args: str, limit_s: float = 60) -> subprocess.CompletedProcess[str]:
    """``lfr ARGS`` in its own process against this module's stack, in a thread (the loop keeps running)."""
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "lfr.cli", *args],
        cwd=REPO,
        env=_env(settings),
        capture_output=True,
        text=True,
        timeout=limit_s,
    )


async def _job_audit(settings: Settings, job: str) -> list[AuditEvent]:
    return [
        e
        for e in await read_all(settings)
        if e.action.startswith("gallery.import.") and e.details.get("job_id") == job
    ]


async def _assert_chain_verifies(settings: Settings) -> None:
    redis = make_redis(settings)
    try:
        check = await AuditTrail(settings, redis).verify_audit()
    finally:
        await redis.aclose()
    assert check.ok, check.problem


async def _failed(settings: Settings, job: str) -> list[str]:
    redis = make_redis(settings)
    try:
        return await JobStore(settings, redis).failed_items(job)
    finally:
        await redis.aclose()


def _record(msg: GalleryImportItem, offset: int) -> ConsumerRecord:
    value = encode(msg)
    return ConsumerRecord(
        topics.GALLERY_IMPORT, 0, offset, 0, 0, msg.item.encode(), value, None, 0, len(value), []
    )


async def test_handler_redelivery_and_forged_records(
    settings: Settings, analyzer: FaceAnalyzer, gallery: Gallery, tree: Path
) -> None:
    """The worker's handler in process: a batch handled twice writes its rows once and counts once; records
    that name an unknown job, another root, a path outside the root or another model are dead-lettered
    unread."""
    job = (
        await submit_import(
            settings, tree, gallery.name, analyzer.embedder.card, actor=ACTOR, reason=REASON, chunk=500
        )
    ).spec.job_id
    root, items = list_items(tree)
    redis = make_redis(settings)
    producer = make_producer(settings, "gallery-import-test")
    await producer.start()
    handler = ImportHandler(settings, redis, analyzer, AuditLog(settings, producer, redis))
    try:
        spec = await handler.jobs.spec(job)
        assert spec is not None
        assert all(i.startswith("empty") for i in items[:NO_FACE])  # sorted first: start after them
        batch = [_record(m, i) for i, m in enumerate(records_for(spec, items, NO_FACE, NO_FACE + 6))]
        assert await handler(batch) == []
        first = (await job_status(settings, job)).counters
        assert first["done"] == 6 and gallery.count() == first["enrolled"] == 6
        # Same batch again, with its done bits cleared (a crash after the upsert, before marking): the
        # images are embedded again and replace their own rows.
        _, bits, _ = handler.jobs._keys(job)
        await redis.delete(bits)
        await redis.hset(handler.jobs._keys(job)[0], mapping={"done": 0, "enrolled": 0})
        assert await handler(batch) == []
        assert gallery.count() == 6 and (await job_status(settings, job)).counters["enrolled"] == 6
        # And with its bits set (a crash after marking, before the commit): nothing is embedded or counted.
        assert await handler(batch) == []
        assert gallery.count() == 6 and (await job_status(settings, job)).counters["done"] == 6
        forged = [
            GalleryImportItem(
                job_id="no-such-job", gallery=gallery.name, root=str(root), item=items[10], seq=10
            ),
            GalleryImportItem(job_id=job, gallery=gallery.name, root="/etc", item="passwd", seq=10),
            GalleryImportItem(
                job_id=job, gallery=gallery.name, root=str(root), item="../../etc/passwd", seq=10
            ),
            GalleryImportItem(job_id=job, gallery=gallery.name, root=str(root), item=items[10], seq=10**9),
        ]
        other_model = GalleryImportItem(
            job_id=job, gallery=gallery.name, root=str(root), item=items[11], seq=11
        )
        out = await handler([_record(m, 100 + i) for i, m in enumerate(forged)])
        assert {o.topic for o in out} == {topics.DEADLETTER}
        reasons = [decode(DeadLetter, o.value) for o in out]
        assert [d.reason for d in reasons] == ["unknown_job", "job_mismatch", "unsafe_path", "job_mismatch"]
        assert all(d.payload == b"" for d in reasons)  # paths and record ids stay out of the dead letters
        handler.card = handler.card.model_copy(update={"version": "another"})
        out = await handler([_record(other_model, 200)])
        assert [decode(DeadLetter, o.value).reason for o in out] == ["model_mismatch"]
        assert gallery.count() == 6 and (await job_status(settings, job)).done == 6
    finally:
        handler.close()
        await producer.stop()
        await redis.aclose()


class _Interrupted(Exception):
    pass


async def _seqs_on_topic(settings: Settings, job: str) -> list[int]:
    c = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)
    await c.start()
    try:
        tps = [TopicPartition(topics.GALLERY_IMPORT, p) for p in range(topics.GALLERY_IMPORT_PARTITIONS)]
        c.assign(tps)
        await c.seek_to_beginning(*tps)
        seqs: list[int] = []
        while batch := await c.getmany(timeout_ms=1500, max_records=5000):
            for recs in batch.values():
                seqs += [m.seq for m in (decode(GalleryImportItem, r.value) for r in recs) if m.job_id == job]
        return seqs
    finally:
        await c.stop()


async def test_interrupted_submission_resumes_where_the_broker_acknowledged(
    settings: Settings, analyzer: FaceAnalyzer, gallery: Gallery, tree: Path
) -> None:
    """A submission stopped after its first acknowledged chunk continues from there with ``job_id``: every
    image is published, none twice; a different listing under the same job id is refused."""
    card = analyzer.embedder.card

    def stop_after_first(n: int, total: int) -> None:
        raise _Interrupted(n)

    with pytest.raises(_Interrupted):
        await submit_import(
            settings,
            tree,
            gallery.name,
            card,
            actor=ACTOR,
            reason=REASON,
            chunk=30,
            on_chunk=stop_after_first,
        )
    redis = make_redis(settings)
    try:
        keys = [k async for k in redis.scan_iter(match=f"{settings.redis.key_prefix}gallery-import:*")]
        jobs = {k.decode().split("{", 1)[1].split("}", 1)[0] for k in keys}
    finally:
        await redis.aclose()
    (job,) = [j for j in jobs if (await job_status(settings, j)).spec.gallery == gallery.name]
    assert (await job_status(settings, job)).counters["submitted"] == 30
    status = await submit_import(
        settings, tree, gallery.name, card, actor="second-officer", reason=REASON, job_id=job, chunk=30
    )
    total = len(list_images(tree))
    assert status.counters["submitted"] == total
    assert sorted(await _seqs_on_topic(settings, job)) == list(range(total))
    with pytest.raises(GalleryError, match="submit it as a new job"):
        await submit_import(
            settings, tree / "empty0", gallery.name, card, actor=ACTOR, reason=REASON, job_id=job
        )
    # The interruption and the resumption are on the audit log; the refused listing is not.
    events = await _job_audit(settings, job)
    assert [(e.actor, e.action) for e in events] == [
        (ACTOR, import_audit.SUBMIT),
        (ACTOR, import_audit.SUBMIT_FAILED),
        ("second-officer", import_audit.SUBMIT),
    ]
    assert (events[1].details["submitted"], events[1].details["error"]) == ("30", "_Interrupted")
    assert events[2].details["resumed_from"] == "30"
    await _assert_chain_verifies(settings)


async def test_cli_submission_without_reason_is_refused_and_publishes_nothing(
    settings: Settings, gallery: Gallery, tree: Path
) -> None:
    before = len(await read_all(settings))
    refused = await _lfr(settings, "gallery", "submit", str(tree), "--gallery", gallery.name, limit_s=60)
    assert refused.returncode == 2, refused.stderr
    assert "submission refused" in refused.stderr and "--reason" in refused.stderr
    assert len(await read_all(settings)) == before
    done = await _lfr(
        settings,
        *("gallery", "submit", str(tree), "--gallery", gallery.name),
        *("--reason", REASON, "--actor", ACTOR, "--json"),
        limit_s=120,
    )
    assert done.returncode == 0, done.stderr
    job = json.loads(done.stdout)["job"]
    (event,) = await _job_audit(settings, job)
    assert (event.actor, event.action, event.reason) == (ACTOR, import_audit.SUBMIT, REASON)
    assert event.details["items"] == str(len(list_images(tree)))
    await _assert_chain_verifies(settings)


# The single-process import (`lfr gallery import`) -------------------------------------------------------


@pytest.fixture
def small_tree(face_data: Path, tmp_path: Path) -> Path:
    photos = list_images(face_data / PHOTO_DIRS[0])[:3]
    assert len(photos) == 3
    for i, p in enumerate(photos):
        dest = tmp_path / f"rec{i:02d}" / p.name
        dest.parent.mkdir()
        shutil.copyfile(p, dest)
    return tmp_path


async def _local_audit(settings: Settings, gallery: str) -> list[AuditEvent]:
    return [
        e
        for e in await read_all(settings)
        if e.action.startswith("gallery.import.local") and e.details.get("gallery") == gallery
    ]


async def test_local_import_is_audited_before_and_after(
    settings: Settings, gallery: Gallery, analyzer: FaceAnalyzer, small_tree: Path
) -> None:
    refused = await _lfr(
        settings, "gallery", "import", str(small_tree), "--gallery", gallery.name, limit_s=60
    )
    assert refused.returncode == 2, refused.stderr
    assert "import refused" in refused.stderr and "--reason" in refused.stderr
    assert await _local_audit(settings, gallery.name) == []

    done = await _lfr(
        settings,
        *("gallery", "import", str(small_tree), "--gallery", gallery.name),
        *("--reason", REASON, "--actor", ACTOR, "--json"),
        limit_s=180,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["items"] == 3 and report["imported"] + report["failed_to_enrol"] == 3
    assert report["index_pending_rows"] is None or report["index_pending_rows"] >= 0
    start, end = await _local_audit(settings, gallery.name)
    assert (start.actor, start.action, start.reason) == (ACTOR, local_import.LOCAL, REASON)
    _, listing = list_items(small_tree)
    assert start.details["items"] == "3"
    assert start.details["manifest_sha256"] == import_audit.manifest_sha256(listing)
    assert (end.actor, end.action) == (ACTOR, local_import.LOCAL_FINISHED)
    assert end.details["imported"] == str(report["imported"])
    assert end.details["rows"] == str(report["rows"])
    for e in (start, end):  # ids, counts and hashes only: no image path on the audit log
        assert not any(Path(item).name in v for v in e.details.values() for item in listing)
    await _assert_chain_verifies(settings)


async def test_local_import_that_stops_is_audited_as_failed(
    settings: Settings, gallery: Gallery, analyzer: FaceAnalyzer, small_tree: Path
) -> None:
    def stop_after_first_batch(done: int, total: int) -> None:
        raise RuntimeError("operator pressed stop")

    with pytest.raises(RuntimeError, match="operator pressed stop"):
        await asyncio.to_thread(
            audited_import,
            settings,
            gallery,
            small_tree,
            analyzer,
            actor=ACTOR,
            reason=REASON,
            batch_size=1,
            on_batch=stop_after_first_batch,
        )
    start, failed = await _local_audit(settings, gallery.name)
    assert start.action == local_import.LOCAL
    assert (failed.action, failed.details["error"]) == (local_import.LOCAL_FAILED, "RuntimeError")
    await _assert_chain_verifies(settings)
