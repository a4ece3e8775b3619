"""Redis connections from settings; key names are always prefixed so several systems can share a server."""

from __future__ import annotations

import redis.asyncio as aioredis

from lfr.core.config import Settings


def make_redis(settings: Settings) -> aioredis.Redis:
    r = settings.redis
    return aioredis.Redis.from_url(
        settings.redis_url,
        password=r.password.get_secret_value() if r.password else None,
        socket_timeout=r.socket_timeout_s,
        socket_connect_timeout=r.socket_timeout_s,
        decode_responses=False,
        health_check_interval=30,
    )


def key(settings: Settings, *parts: str) -> str:
    return settings.redis.key_prefix + ":".join(parts)


def text(value: bytes | str | None, default: str = "") -> str:
    """Redis replies arrive as bytes (decode_responses=False keeps binary values intact)."""
    if value is None:
        return default
    return value.decode() if isinstance(value, bytes) else value
