"""What API routes share: settings and lazily started clients, built once per process in the lifespan."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer
from fastapi import Request

from lfr.core.audit import AuditLog
from lfr.core.bus import make_producer
from lfr.core.config import Settings
from lfr.core.redis_client import make_redis


@dataclass
class ApiContext:
    settings: Settings
    redis: aioredis.Redis
    producer: AIOKafkaProducer
    audit: AuditLog
    extras: dict[str, Any] = field(default_factory=dict)

    @classmethod
    async def start(cls, settings: Settings) -> ApiContext:
        redis = make_redis(settings)
        producer = make_producer(settings, "api")
        await producer.start()
        return cls(settings, redis, producer, AuditLog(settings, producer, redis))

    async def close(self) -> None:
        for item in self.extras.values():
            close = getattr(item, "aclose", None) or getattr(item, "close", None)
            if close is not None:
                result = close()
                if hasattr(result, "__await__"):
                    await result
        await self.producer.stop()
        await self.redis.aclose()


def get_ctx(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx
