"""Where the monitor's figures and events live in Redis, written by the stage and read by the status.

Values are whole documents the stage overwrites from its tables (SET, never INCR), so a redelivered record
or a restarted monitor rewrites the same figures instead of adding to them. Each document expires a few
minutes after its last update: a camera or deployment that stopped existing stops being reported.
"""

from __future__ import annotations

import json
import socket
import time
from typing import Any

import redis.asyncio as aioredis

from lfr.core.config import Settings
from lfr.core.redis_client import key as rkey
from lfr.core.redis_client import text

EVENTS_KEPT = 200
HEARTBEAT_TTL_S = 30


def camera_key(settings: Settings, camera_id: str) -> str:
    return rkey(settings, "ops", "camera", camera_id)


def deployment_key(settings: Settings, deployment_id: str) -> str:
    return rkey(settings, "ops", "deployment", deployment_id)


def events_key(settings: Settings) -> str:
    return rkey(settings, "ops", "events")


def heartbeat_key(settings: Settings) -> str:
    return rkey(settings, "ops", "monitor")


def sample_key(settings: Settings) -> str:
    return rkey(settings, "ops", "offsets-sample")


def doc_ttl_s(settings: Settings) -> int:
    return settings.monitor.keep_minutes * 60


async def put_doc(redis: aioredis.Redis, key: str, doc: dict[str, Any], ttl_s: int) -> None:
    await redis.set(key, json.dumps(doc, separators=(",", ":")), ex=ttl_s)


async def push_event(redis: aioredis.Redis, settings: Settings, event: dict[str, Any]) -> None:
    pipe = redis.pipeline(transaction=True)
    pipe.lpush(events_key(settings), json.dumps(event, separators=(",", ":")))
    pipe.ltrim(events_key(settings), 0, EVENTS_KEPT - 1)
    await pipe.execute()


def reread_key(settings: Settings) -> str:
    return rkey(settings, "ops", "offsets-reread")


async def beat(redis: aioredis.Redis, settings: Settings, reread_since_last: int) -> None:
    """The monitor is alive; ``reread_since_last`` records the guard re-read are added to a lasting total."""
    total = await redis.incrby(reread_key(settings), reread_since_last)
    doc = {"host": socket.gethostname(), "updated_at_ms": int(time.time() * 1000), "gaps_filled": int(total)}
    await put_doc(redis, heartbeat_key(settings), doc, HEARTBEAT_TTL_S)


async def read_docs(redis: aioredis.Redis, pattern_key: str) -> list[dict[str, Any]]:
    """Every document whose key starts with ``pattern_key`` (a prefix ending in ':')."""
    keys = [k async for k in redis.scan_iter(match=pattern_key + "*", count=500)]
    if not keys:
        return []
    out = []
    for raw in await redis.mget(keys):
        if raw is None:
            continue
        try:
            out.append(json.loads(text(raw)))
        except ValueError:
            continue
    return out


async def read_json(redis: aioredis.Redis, key: str) -> dict[str, Any] | None:
    raw = await redis.get(key)
    if raw is None:
        return None
    try:
        doc = json.loads(text(raw))
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


async def read_events(redis: aioredis.Redis, settings: Settings, limit: int = 50) -> list[dict[str, Any]]:
    out = []
    for raw in await redis.lrange(events_key(settings), 0, limit - 1):
        try:
            out.append(json.loads(text(raw)))
        except ValueError:
            continue
    return out
