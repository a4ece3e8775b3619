"""Per-deployment counters for transparency reporting: counts only, never anything about a face.

Counters live in Redis hashes per deployment and minute (for the dashboard's rates) and per deployment in
total (for ``lfr report``). HINCRBY is atomic, so any replica of any stage can add to them.
"""

from __future__ import annotations

from collections.abc import Mapping

import redis.asyncio as aioredis

from lfr.core.config import Settings
from lfr.core.redis_client import key as rkey
from lfr.core.redis_client import text
from lfr.core.timeutil import now_ms

# Counter names shared by the stages that write them and the report that reads them.
FACES_ANALYSED = "faces_analysed"
CROPS_EXPIRED = "crops_expired"
CROPS_REFUSED = "crops_refused"
CROPS_DISCARDED = "crops_discarded"  # analysed and matched nothing: deleted at once
HITS = "hits"
ALERTS = "alerts"
ADJ_MATCH = "adjudicated_match"
ADJ_NO_MATCH = "adjudicated_no_match"
ADJ_UNDECIDED = "adjudicated_unable"

MINUTE_TTL_S = 8 * 24 * 3600


def counter_keys(settings: Settings, deployment_id: str, at_ms: int) -> tuple[str, str]:
    """The (total, minute) hash keys, for stages that add counts inside their own Redis transaction."""
    minute = at_ms // 60_000 * 60
    return rkey(settings, "stats", deployment_id, "total"), rkey(
        settings, "stats", deployment_id, str(minute)
    )


async def add(
    redis: aioredis.Redis,
    settings: Settings,
    deployment_id: str,
    counts: Mapping[str, int],
    at_ms: int | None = None,
) -> None:
    if not deployment_id or not any(counts.values()):
        return
    total, minute = counter_keys(settings, deployment_id, at_ms or now_ms())
    pipe = redis.pipeline(transaction=False)
    for name, n in counts.items():
        if n:
            pipe.hincrby(total, name, n)
            pipe.hincrby(minute, name, n)
    pipe.expire(minute, MINUTE_TTL_S)
    await pipe.execute()


async def totals(redis: aioredis.Redis, settings: Settings, deployment_id: str) -> dict[str, int]:
    raw = await redis.hgetall(rkey(settings, "stats", deployment_id, "total"))
    return {text(k): int(v) for k, v in raw.items()}


async def per_minute(
    redis: aioredis.Redis, settings: Settings, deployment_id: str, minutes: int = 60
) -> list[tuple[int, dict[str, int]]]:
    end = now_ms() // 60_000 * 60
    pipe = redis.pipeline(transaction=False)
    starts = [end - 60 * i for i in range(minutes - 1, -1, -1)]
    for m in starts:
        pipe.hgetall(rkey(settings, "stats", deployment_id, str(m)))
    rows = await pipe.execute()
    return [(m, {text(k): int(v) for k, v in row.items()}) for m, row in zip(starts, rows, strict=True)]
