"""Redis connections from settings; key names are always prefixed so several systems can share a server."""

from __future__ import annotations

import logging
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.sentinel import Sentinel

from lfr.core.config import Settings

log = logging.getLogger(__name__)


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
    if r.sentinels:
        tls: dict[str, Any] = {}
        if r.tls:
            tls["ssl"] = True
            if r.tls_ca_file:
                tls["ssl_ca_certs"] = str(r.tls_ca_file)
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
    url, tls_kwargs = _tls_url(settings, settings.redis_url)
    return aioredis.Redis.from_url(
        url,
        password=password,
        decode_responses=False,
        health_check_interval=30,
        **common,
        **tls_kwargs,
    )


def _tls_url(settings: Settings, url: str) -> tuple[str, dict[str, Any]]:
    """The URL to connect to and its TLS arguments: ``redis.tls`` turns a redis:// URL into rediss://.

    redis-py picks the TLS connection class from the URL scheme alone; an ``ssl=True`` argument next to a
    URL is handed on to the plain connection class, which refuses it (TypeError on the first command). The CA
    bundle applies to every TLS URL, rediss:// ones included; without one the system's CAs verify the server.
    """
    r = settings.redis
    if r.tls and url.startswith("redis://"):
        url = "rediss://" + url.removeprefix("redis://")
    if not url.startswith("rediss://"):
        return url, {}
    return url, {"ssl_ca_certs": str(r.tls_ca_file)} if r.tls_ca_file else {}


def make_keystore_redis(settings: Settings) -> aioredis.Redis:
    """A client for the crop key store: a Redis that never writes to disk (save "", appendonly no).

    Crop data keys must not outlive their TTL anywhere (privacy rule 1): a key in an AOF file, an RDB
    snapshot, a backup or a persistent replica reopens every crop it protected, together with a broker
    backup. So they live apart from the persistent Redis that holds alerts and deployments. When no key
    store is configured the main Redis is used, with a warning: acceptable only if that Redis never
    persists.
    """
    r = settings.redis
    url = settings.keystore_redis_url
    if not r.keystore_url and url == settings.redis_url:
        log.warning(
            "no separate crop key store (redis.keystore_url): crop keys go to the main Redis; unless that "
            "Redis has no AOF, no RDB snapshots, no backups and no persistent replicas, expired crops can "
            "be reopened from its files (docs/privacy.md)"
        )
        return make_redis(settings)
    password = r.keystore_password or r.password
    url, tls = _tls_url(settings, url)
    return aioredis.Redis.from_url(
        url,
        password=password.get_secret_value() if password else None,
        decode_responses=False,
        health_check_interval=30,
        socket_timeout=r.socket_timeout_s,
        socket_connect_timeout=r.socket_timeout_s,
        **tls,
    )


def key(settings: Settings, *parts: str) -> str:
    return settings.redis.key_prefix + ":".join(parts)


def text(value: bytes | str | None, default: str = "") -> str:
    """Redis replies arrive as bytes (decode_responses=False keeps binary values intact)."""
    if value is None:
        return default
    return value.decode() if isinstance(value, bytes) else value
