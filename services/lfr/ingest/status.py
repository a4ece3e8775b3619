"""Per-camera status in Redis, for ``lfr cameras status`` and the console.

Why Redis rather than each pod's health endpoint: with N ingest replicas the operator asks one question
("which cameras are working?") and should not need to find and query every pod. Each replica writes one key
per camera every few seconds with a TTL of a few intervals, so a camera whose replica died shows as
"no report" rather than as a stale "connected". Status holds counters and state only, and the camera URL
with credentials removed.
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

STATUS_INTERVAL_S = 2.0
STATUS_TTL_S = 15


def status_key(settings: Settings, camera_id: str) -> str:
    return rkey(settings, "ingest", "camera", camera_id)


async def write_status(
    redis: aioredis.Redis, settings: Settings, docs: list[dict[str, Any]], replica: int
) -> None:
    pipe = redis.pipeline(transaction=False)
    host = socket.gethostname()
    now = time.time()
    for doc in docs:
        payload = {**doc, "replica": replica, "host": host, "updated_at": round(now, 3)}
        pipe.set(status_key(settings, str(doc["camera_id"])), json.dumps(payload), ex=STATUS_TTL_S)
    await pipe.execute()


async def read_status(
    redis: aioredis.Redis, settings: Settings, camera_ids: list[str]
) -> dict[str, dict[str, Any] | None]:
    if not camera_ids:
        return {}
    raw = await redis.mget([status_key(settings, c) for c in camera_ids])
    out: dict[str, dict[str, Any] | None] = {}
    for cid, value in zip(camera_ids, raw, strict=True):
        try:
            out[cid] = json.loads(text(value)) if value is not None else None
        except ValueError:
            out[cid] = None
    return out
