"""Composition root of `lfr embed`: wires settings, Redis, the model, the watchlist store and the stage."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import numpy as np
import redis.asyncio as aioredis

from lfr.core import stats, topics
from lfr.core.config import Settings
from lfr.core.crypto import CropKeyring, DeploymentAlertKeys
from lfr.core.redis_client import make_redis
from lfr.core.service import ServiceContext
from lfr.core.stage import Stage
from lfr.embedder.handler import EmbedHandler
from lfr.embedder.track_fusion import TrackFusion
from lfr.vision import Embedder, load_embedder
from lfr.watchlist.deployments import DeploymentStore, LiveDeployments
from lfr.watchlist.store import Candidate, WatchlistStore

log = logging.getLogger(__name__)
STAGE_CHUNKS = 4  # model batches per stage batch


class StoreMatcher:
    """The watchlist store behind the handler's async interface (pymilvus calls block)."""

    def __init__(self, store: WatchlistStore) -> None:
        self.store = store

    async def search(
        self, vectors: np.ndarray, watchlist_ids: Sequence[str], top_k: int
    ) -> list[list[Candidate]]:
        return await asyncio.to_thread(self.store.search, vectors, list(watchlist_ids), top_k)

    async def confirm(self, candidates: Sequence[Candidate], watchlist_ids: Sequence[str]) -> list[Candidate]:
        return await asyncio.to_thread(self.store.confirm, list(candidates), list(watchlist_ids))


def build_handler(
    settings: Settings, redis: aioredis.Redis, embedder: Embedder, store: WatchlistStore
) -> EmbedHandler:
    """The handler over the real parts: ``redis`` holds deployments, counters and alert keys (never crop
    keys, which the memory-only key store behind CropKeyring keeps)."""
    deployments = LiveDeployments(DeploymentStore(settings, redis), card=embedder.card)

    async def count(deployment_id: str, per_crop: dict[str, dict[str, int]]) -> None:
        # A crop can come back until the crops topic drops it, so its marker lives that long.
        await stats.add_once(
            redis,
            settings,
            deployment_id,
            "embedder",
            per_crop,
            marker_ttl_ms=settings.kafka.crops_retention_ms,
        )

    return EmbedHandler(
        settings.embedder.top_k,
        CropKeyring(settings),  # the memory-only key store, never the persistent Redis
        DeploymentAlertKeys(settings, redis),
        embedder,
        StoreMatcher(store),
        deployments,
        count,
        model_batch=settings.embedder.batch_size,
        fusion=track_fusion(settings, embedder.card.metric),
    )


def track_fusion(settings: Settings, metric: str | None) -> TrackFusion | None:
    """The per-track fusion the settings ask for (None: every crop is searched on its own)."""
    e = settings.embedder
    if not e.track_fusion:
        return None
    return TrackFusion(
        metric or "COSINE",
        ttl_s=e.track_fusion_ttl_s,
        max_tracks=e.track_fusion_max_tracks,
        max_crops=e.track_fusion_max_crops,
        min_similarity=e.track_fusion_min_similarity,
    )


async def main(ctx: ServiceContext) -> None:
    s = ctx.settings
    redis = make_redis(s)
    embedder = await asyncio.to_thread(load_embedder, s)
    store = WatchlistStore(s, embedder.card)
    await asyncio.to_thread(store.ensure_collection)
    handler = build_handler(s, redis, embedder, store)
    # Several model batches per stage batch: each chunk's search overlaps the next chunk's embedding, and only
    # the last search of a stage batch is left in the open.
    stage = Stage(
        s,
        "embedder",
        topics.CROPS,
        s.embedder.group_id,
        handler,
        batch_size=STAGE_CHUNKS * s.embedder.batch_size,
        batch_wait_ms=s.embedder.batch_wait_ms,
    )
    ctx.on_stop(stage.stop)
    ctx.health.add_check("kafka", lambda: stage.ready)
    ctx.health.add_check("model", lambda: embedder is not None)
    ctx.health.add_check("redis", redis.ping)
    log.info("embedder ready: model %s, group %s", embedder.model_id, s.embedder.group_id)
    try:
        await stage.run()
    finally:
        store.close()
        await redis.aclose()
