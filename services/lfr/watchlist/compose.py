"""The watchlist domain's services assembled over one set of clients: subjects, deployments and the audit
trail sharing one card-and-store holder.

The API builds them in its context; commands, the demo and benchmarks open them with ``open_services``,
which brings its own Redis client and Kafka producer. Whatever the caller must decide (the alert purge of
"stop and purge", which the alerting package provides; a face analyser already loaded) is handed in, so
this package depends on nothing above it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import redis.asyncio as aioredis

from lfr.core.audit import AuditLog
from lfr.core.config import Settings
from lfr.core.milvus import MilvusConnection
from lfr.watchlist.audit_trail import AuditTrail
from lfr.watchlist.card_stores import CardStores
from lfr.watchlist.deployment_service import DeploymentService
from lfr.watchlist.deployments import PurgeAlerts
from lfr.watchlist.enrol import FaceEnroller
from lfr.watchlist.subjects import SubjectService

PurgeFactory = Callable[[Settings, aioredis.Redis], PurgeAlerts]


@dataclass
class WatchlistServices:
    stores: CardStores
    subjects: SubjectService
    deployments: DeploymentService
    audit_trail: AuditTrail

    async def aclose(self) -> None:
        await self.stores.aclose()


def build_services(
    settings: Settings,
    redis: aioredis.Redis,
    audit: AuditLog,
    *,
    purge_alerts: PurgeAlerts | None = None,
    analyzer: FaceEnroller | None = None,
    milvus: MilvusConnection | None = None,
) -> WatchlistServices:
    """Cheap: no model or Milvus connection is touched until a service first needs it."""
    stores = CardStores(settings, milvus=milvus)
    return WatchlistServices(
        stores=stores,
        subjects=SubjectService(settings, stores, audit, analyzer),
        deployments=DeploymentService(settings, redis, audit, stores, purge_alerts),
        audit_trail=AuditTrail(settings, redis),
    )


@asynccontextmanager
async def open_services(
    settings: Settings, purge: PurgeFactory | None = None, analyzer: FaceEnroller | None = None
) -> AsyncIterator[WatchlistServices]:
    """The services with their own Redis client and Kafka producer, closed on exit.

    ``purge(settings, redis)`` makes the alert purge over this Redis client; without it "stop and purge"
    is refused.
    """
    from lfr.core.bus import make_producer
    from lfr.core.redis_client import make_redis

    redis = make_redis(settings)
    producer = make_producer(settings, "watchlist-cli")
    await producer.start()
    try:
        services = build_services(
            settings,
            redis,
            AuditLog(settings, producer, redis),
            purge_alerts=purge(settings, redis) if purge is not None else None,
            analyzer=analyzer,
        )
        try:
            yield services
        finally:
            await services.aclose()
    finally:
        await producer.stop()
        await redis.aclose()
