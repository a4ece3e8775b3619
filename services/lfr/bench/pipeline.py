"""`lfr bench pipeline`: end-to-end embedder throughput against raw onnxruntime throughput.

Raw: the embedder's batched model call alone on real face chips. End to end: the same chips as encrypted
FaceCrops on a real broker, consumed by the real Stage + EmbedHandler (decrypt, decode, embed, Milvus search
restricted to the deployment, threshold, hits, commit), timed from the first record to the last commit.
``efficiency`` = end-to-end faces/s divided by raw faces/s on the same cores and threads.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from lfr.core import stats, topics
from lfr.core.bus import ensure_topics, make_producer
from lfr.core.config import Settings, load_settings
from lfr.core.crypto import CropKeyring, crop_aad
from lfr.core.images import list_images, read_image
from lfr.core.redis_client import make_redis
from lfr.core.serde import encode
from lfr.core.shared_data import shared_faces_dir
from lfr.core.stage import Stage
from lfr.core.timeutil import ts_now
from lfr.core.topics import spec_for
from lfr.embedder.service import STAGE_CHUNKS, build_handler
from lfr.modelbuild import build_models
from lfr.v1.crop_pb2 import FaceCrop
from lfr.vision import FaceAnalyzer
from lfr.watchlist.compose import open_services
from lfr.watchlist.deployment_service import start_deployment_now
from lfr.watchlist.store import SubjectMeta, WatchlistStore


def collect_chips(analyzer: FaceAnalyzer, roots: list[Path], want: int) -> list[np.ndarray]:
    """Aligned chips of real faces from the first folders that exist (shared data, or the demo scene)."""
    chips: list[np.ndarray] = []
    for root in roots:
        if not root.is_dir():
            continue
        for path in list_images(root)[: want * 2]:
            img = read_image(path)
            if img is None:
                continue
            chips.extend(f.chip for f in analyzer.analyse(img, pad_tight=True)[:1])
            if len(chips) >= want:
                return chips
    if not chips:
        raise RuntimeError(f"no face images found under {', '.join(map(str, roots))}")
    return chips


def raw_throughput(embedder: Any, chips: list[np.ndarray], batch: int, seconds: float) -> float:
    embedder.embed(chips[:batch])  # warm-up
    done, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for i in range(0, len(chips), batch):
            embedder.embed(chips[i : i + batch])
            done += len(chips[i : i + batch])
    return done / (time.perf_counter() - t0)


async def _end_to_end(
    settings: Settings, embedder: Any, chips: list[np.ndarray], n_crops: int, subjects: int
) -> dict[str, Any]:
    card = embedder.card
    redis = make_redis(settings)
    producer = make_producer(settings, "bench")
    await producer.start()
    wl = f"bench-{uuid.uuid4().hex[:6]}"
    store = WatchlistStore(settings, card)
    try:
        rng = np.random.default_rng(7)
        real = embedder.embed(chips[: min(8, len(chips))])
        for i in range(subjects):
            base = real[i % len(real)] if i < len(real) else rng.normal(0, 0.08, card.dim or 128)
            vec = np.asarray(base, np.float32)
            store.upsert_subject(SubjectMeta(subject_id=f"s{i}", watchlist_id=wl), vec, f"{i:064x}")
        async with open_services(settings) as svc:
            deployment_id = await start_deployment_now(
                svc.deployments, "bench", "benchmark", [wl], "bench", "Supt Bench", 1
            )

        topic = f"bench.crops.{uuid.uuid4().hex[:6]}"
        base_spec = spec_for(settings, topics.CROPS)
        await ensure_topics(settings, [type(base_spec)(topic, 8, base_spec.key, base_spec.retention_ms)])
        keyring = CropKeyring(settings)  # the memory-only key store
        jpegs = [cv2.imencode(".jpg", c, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes() for c in chips]
        futures = []
        for i in range(n_crops):
            crop_id = uuid.uuid4().hex
            cam = f"cam-{i % 16}"
            crop = FaceCrop(
                crop_id=crop_id,
                deployment_id=deployment_id,
                camera_id=cam,
                track_id=str(i),
                captured_at=ts_now(),
                chip_size=chips[0].shape[0],
                chip=await keyring.encrypt(jpegs[i % len(jpegs)], crop_aad(crop_id, cam, deployment_id)),
            )
            futures.append(await producer.send(topic, encode(crop), key=cam.encode()))
        await asyncio.gather(*futures)

        handler = build_handler(settings, redis, embedder, store)
        stage = Stage(
            settings,
            "bench-embedder",
            topic,
            f"bench-{uuid.uuid4().hex[:6]}",
            handler,
            batch_size=STAGE_CHUNKS * settings.embedder.batch_size,
            batch_wait_ms=settings.embedder.batch_wait_ms,
        )
        runner = asyncio.create_task(stage.run())
        # Timed from the first committed batch to the last, over the faces in between, so the group join
        # and the first fetch are left out and the rate compares like with like against the raw model.
        first: tuple[float, int] | None = None
        while True:
            counts = await stats.totals(redis, settings, deployment_id)
            done = counts.get(stats.FACES_ANALYSED, 0)
            if done and first is None:
                first = (time.perf_counter(), done)
            if done >= n_crops:
                break
            await asyncio.sleep(0.01)
        assert first is not None
        elapsed = time.perf_counter() - first[0]
        timed = n_crops - first[1]
        stage.stop()
        await runner
        return {
            "faces": timed,
            "seconds": elapsed,
            "faces_per_s": timed / elapsed,
            "hits": counts.get(stats.HITS, 0),
            "watchlist_size": subjects,
        }
    finally:
        store.close()
        await producer.stop()
        await redis.aclose()


def bench_pipeline(
    settings: Settings, crops: int = 1500, subjects: int = 1000, seconds: float = 5.0
) -> dict[str, Any]:
    """Runs on a private temporary stack so it never disturbs a running deployment."""
    import tempfile

    from lfr.stack.local import LocalStack

    shared = shared_faces_dir()
    roots = [
        shared / "lfw_pairs_dev" / "images",
        shared / "deepface_testset",
        settings.data_dir / "demo-scene",
    ]
    build_models(settings.models_dir)
    analyzer = FaceAnalyzer(settings)
    chips = collect_chips(analyzer, roots, 64)
    embedder = analyzer.embedder
    batch = settings.embedder.batch_size
    raw_before = raw_throughput(embedder, chips, batch, seconds)
    with tempfile.TemporaryDirectory(prefix="lfr-bench-") as tmp:
        stack_settings = load_settings(
            data_dir=tmp,
            models={**settings.models.model_dump(), "dir": settings.models_dir},
            kafka={"crops_partitions": 8},
        )
        stack = LocalStack(stack_settings)
        stack.up()
        try:
            e2e = asyncio.run(_end_to_end(stack_settings, embedder, chips, crops, subjects))
        finally:
            stack.down()
    raw = (raw_before + raw_throughput(embedder, chips, batch, seconds)) / 2  # before and after: load drifts
    return {
        "raw_faces_per_s": round(raw, 1),
        "pipeline_faces_per_s": round(e2e["faces_per_s"], 1),
        "efficiency": round(e2e["faces_per_s"] / raw, 3),
        "batch_size": batch,
        "intra_op_threads": settings.models.intra_op_threads,
        "crops": crops,
        "watchlist_size": subjects,
        "hits": e2e["hits"],
        "model": embedder.model_id,
    }
