"""Redis connections from settings; key names are always prefixed so several systems can share a server."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.sentinel import Sentinel

from lfr.core.config import Settings


def make_redis(settings: Settings) -> aioredis.Redis:
    """A client for the configured Redis: a URL, or the master that the configured Sentinels name.

    With Sentinels the client asks them for the current master on every (re)connect, so a failover is
    followed without a restart; the Lua scripts run on the master like any other command.
    """
    r = settings.redis
    password = r.password.get_secret_value() if r.password else None
    common: dict[str, Any] = {
        "socket_timeout": r.socket_timeout_s,
        "socket_connect_timeout": r.socket_timeout_s,
    }
    tls: dict[str, Any] = {}
    if r.tls:
        tls["ssl"] = True
        if r.tls_ca_file:
            tls["ssl_ca_certs"] = str(r.tls_ca_file)
    if r.sentinels:
        sentinel = Sentinel(
            [(h, int(p)) for h, _, p in (e.rpartition(":") for e in r.sentinels)],
            sentinel_kwargs={
                "password": r.sentinel_password.get_secret_value() if r.sentinel_password else None,
                **common,
                **tls,
            },
        )
        return sentinel.master_for(
            r.sentinel_master,
            password=password,
            decode_responses=False,
            health_check_interval=30,
            **common,
            **tls,
        )
    return aioredis.Redis.from_url(
        settings.redis_url,
        password=password,
        decode_responses=False,
        health_check_interval=30,
        **common,
        **tls,
    )


def key(settings: Settings, *parts: str) -> str:
    return settings.redis.key_prefix + ":".join(parts)


def text(value: bytes | str | None, default: str = "") -> str:
    """Redis replies arrive as bytes (decode_responses=False keeps binary values intact)."""
    if value is None:
        return default
    return value.decode() if isinstance(value, bytes) else value
