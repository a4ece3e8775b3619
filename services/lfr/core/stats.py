"""Per-deployment counters for transparency reporting: counts only, never anything about a face.

Counters live in Redis hashes per deployment and minute (for the dashboard's rates) and per deployment in
total (for ``lfr report``). HINCRBY is atomic, so any replica of any stage can add to them, and a marker per
counted item keeps a retried or redelivered batch from counting twice.
"""

from __future__ import annotations

import hashlib
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
TRACKS_ELIGIBLE = "tracks_eligible"  # a face >= min_face_px for >= 1 s (lfr.ingest.pipeline.COVERAGE_MIN_S)
TRACKS_UNSEARCHED = "tracks_unsearched"  # of those, never searched
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


# Adds each item's counts only if its marker is new: a batch retried after a crash, or redelivered before its
# offsets were committed, finds its markers and changes nothing.
# KEYS: 1 total hash, 2 minute hash. ARGV: 1 marker prefix, 2 marker ttl ms, 3 minute ttl s, then per item:
# item id, number of counters n, then n (name, value) pairs.
_ADD_ONCE_LUA = """
local i = 4
local fresh_items = 0
while i <= #ARGV do
  local n = tonumber(ARGV[i + 1])
  if redis.call('SET', ARGV[1] .. ARGV[i], '1', 'NX', 'PX', ARGV[2]) then
    fresh_items = fresh_items + 1
    for j = 0, n - 1 do
      local name = ARGV[i + 2 + 2 * j]
      local v = tonumber(ARGV[i + 3 + 2 * j])
      redis.call('HINCRBY', KEYS[1], name, v)
      redis.call('HINCRBY', KEYS[2], name, v)
    end
  end
  i = i + 2 + 2 * n
end
if fresh_items > 0 then redis.call('EXPIRE', KEYS[2], ARGV[3]) end
return fresh_items
"""


async def add_once(
    redis: aioredis.Redis,
    settings: Settings,
    deployment_id: str,
    stage: str,
    per_item: Mapping[str, Mapping[str, int]],
    marker_ttl_ms: int,
    at_ms: int | None = None,
) -> int:
    """Add each item's counts exactly once per stage; returns how many items were counted now.

    ``per_item`` maps an id that a redelivery repeats (the crop id) to that item's counters. Markers live
    ``marker_ttl_ms``, which must cover how long the input can be redelivered (the input topic's retention),
    and are named by a one-way hash of the id: Redis never holds a crop id of a face that matched nothing,
    and a marker says nothing the input topic does not hold for as long.
    """
    items = [(item, {k: v for k, v in c.items() if v}) for item, c in per_item.items()]
    items = [(item, c) for item, c in items if c]
    if not deployment_id or not items:
        return 0
    total, minute = counter_keys(settings, deployment_id, at_ms or now_ms())
    argv: list[str | int] = [rkey(settings, "stats", "seen", stage, ""), marker_ttl_ms, MINUTE_TTL_S]
    for item, c in items:
        argv += [hashlib.sha256(item.encode()).hexdigest()[:32], len(c)]
        for name, n in c.items():
            argv += [name, n]
    return int(await redis.eval(_ADD_ONCE_LUA, 2, total, minute, *argv))


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
