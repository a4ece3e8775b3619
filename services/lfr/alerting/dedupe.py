"""Dedupe of hits into alerts per (deployment, subject, window), atomically in Redis.

Windows are fixed (tumbling) intervals of ``alerting.dedupe_window_s`` aligned to the epoch, taken on the
hit's capture time. That choice is what makes alert ids reproducible: ``alert_id(deployment, subject,
window_start)`` depends on nothing but the hit itself, so a redelivery, a replay of lfr.hits.v1 or a second
replica computes the same id. (A sliding window anchored at the first sighting would depend on processing
order and state.) The cost is that a person seen either side of a window boundary raises two alerts, one per
window, which officers see as two sightings.

One Lua script applies one hit: the first hit of a window creates the record, later hits raise hit_count,
extend first/last seen, add cameras and keep the best score with its probe crop; a hit id already in the
alert's hit set changes nothing. Each applied hit raises the revision by one.

Loss-freedom across crashes: a hit is applied to Redis before its alert is produced to Kafka and the
offset is committed after that, so a crash in between redelivers a hit Redis has already seen. The script
then answers REEMIT when the record's newest revision was never marked as produced (``pub_rev < rev``), and
the handler produces the current state again. Subscribers de-duplicate by (alert_id, revision).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

from lfr.alerting.store import DAY_S, FIELD_LIST_LUA, AlertKeys, AlertState, parse_state_reply
from lfr.core.config import Settings
from lfr.core.ids import alert_id as derive_alert_id
from lfr.core.serde import encode
from lfr.core.timeutil import ms_from_ts
from lfr.v1.hit_pb2 import Hit


class Applied(IntEnum):
    REFUSED = -1  # deployment purged after this hit was captured
    DUPLICATE = 0  # hit seen before and its alert's newest revision is already on the topic
    CREATED = 1
    UPDATED = 2
    REEMIT = 3  # hit seen before, but the revision it led to was never marked produced: produce again


def window_start_ms(captured_ms: int, window_s: int) -> int:
    """Start of the fixed window holding ``captured_ms`` (floor, also for times before the epoch)."""
    if window_s <= 0:
        raise ValueError("dedupe window must be positive")
    width = window_s * 1000
    return captured_ms - captured_ms % width


def event_time_ms(hit: Hit, fallback_ms: int) -> int:
    """Capture time of the face; the hit time or the record time only when the embedder left it unset."""
    if hit.HasField("captured_at") and (hit.captured_at.seconds or hit.captured_at.nanos):
        return ms_from_ts(hit.captured_at)
    if hit.HasField("hit_at") and (hit.hit_at.seconds or hit.hit_at.nanos):
        return ms_from_ts(hit.hit_at)
    return fallback_ms


def alert_id_for(hit: Hit, captured_ms: int, window_s: int) -> str:
    return derive_alert_id(hit.deployment_id, hit.subject_id, window_start_ms(captured_ms, window_s))


_APPLY_HIT = f"""
-- KEYS: alert hash, hit set, camera zset, deployment index, deployment tombstone
-- ARGV: 1 hit_id, 2 camera_id, 3 captured_ms, 4 score, 5 probe blob, 6 crop_id, 7 ttl_s, 8 alert_id,
--       9 deployment_id, 10 subject_id, 11 watchlist_id, 12 category, 13 threshold, 14 window_start,
--       15 traceparent, 16 now_ms
local captured = tonumber(ARGV[3])
local tomb = redis.call('GET', KEYS[5])
if tomb and captured <= tonumber(tomb) then return {{-1}} end
local ttl = tonumber(ARGV[7])
local code
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then
  local rev = tonumber(redis.call('HGET', KEYS[1], 'rev') or '0')
  local pub = tonumber(redis.call('HGET', KEYS[1], 'pub_rev') or '0')
  if rev == 0 or rev <= pub then return {{0}} end
  code = 3
else
  redis.call('SADD', KEYS[2], ARGV[1])
  if redis.call('EXISTS', KEYS[1]) == 0 then
    redis.call('HSET', KEYS[1],
      'alert_id', ARGV[8], 'deployment_id', ARGV[9], 'subject_id', ARGV[10], 'watchlist_id', ARGV[11],
      'category', ARGV[12], 'threshold', ARGV[13], 'window_start', ARGV[14], 'first_seen', ARGV[3],
      'last_seen', ARGV[3], 'hit_count', 1, 'best_score', ARGV[4], 'best_hit_id', ARGV[1],
      'probe', ARGV[5], 'probe_crop_id', ARGV[6], 'status', 'pending', 'rev', 1, 'pub_rev', 0,
      'counted', 0, 'created_ms', ARGV[16], 'traceparent', ARGV[15])
    code = 1
  else
    redis.call('HINCRBY', KEYS[1], 'hit_count', 1)
    redis.call('HINCRBY', KEYS[1], 'rev', 1)
    if captured < tonumber(redis.call('HGET', KEYS[1], 'first_seen')) then
      redis.call('HSET', KEYS[1], 'first_seen', ARGV[3])
    end
    if captured > tonumber(redis.call('HGET', KEYS[1], 'last_seen')) then
      redis.call('HSET', KEYS[1], 'last_seen', ARGV[3])
    end
    if tonumber(ARGV[4]) > tonumber(redis.call('HGET', KEYS[1], 'best_score')) then
      redis.call('HSET', KEYS[1], 'best_score', ARGV[4], 'best_hit_id', ARGV[1], 'probe', ARGV[5],
                 'probe_crop_id', ARGV[6])
    end
    code = 2
  end
  redis.call('ZADD', KEYS[3], 'LT', captured, ARGV[2])
  redis.call('EXPIRE', KEYS[1], ttl)
  redis.call('EXPIRE', KEYS[2], ttl)
  redis.call('EXPIRE', KEYS[3], ttl)
  redis.call('ZADD', KEYS[4], tonumber(redis.call('HGET', KEYS[1], 'last_seen')), ARGV[8])
  redis.call('EXPIRE', KEYS[4], ttl + {DAY_S})
end
local out = {{code}}
for _, v in ipairs(redis.call('HMGET', KEYS[1], unpack({FIELD_LIST_LUA}))) do table.insert(out, v) end
for _, c in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do table.insert(out, c) end
return out
"""


@dataclass(frozen=True)
class HitResult:
    hit: Hit
    code: Applied
    state: AlertState | None  # None when refused or a plain duplicate


class Deduper:
    """Applies hits to alert records: one pipelined round trip per batch, one atomic script per hit."""

    def __init__(self, settings: Settings, redis: aioredis.Redis) -> None:
        self.settings = settings
        self.redis = redis
        self.keys = AlertKeys(settings)
        self._script: AsyncScript = redis.register_script(_APPLY_HIT)

    async def apply(self, hits: Sequence[tuple[Hit, int]], now: int) -> list[HitResult]:
        """Apply ``(hit, fallback_time_ms)`` pairs in order; results come back in the same order."""
        if not hits:
            return []
        a = self.settings.alerting
        ttl = a.retention_days * DAY_S
        pipe = self.redis.pipeline(transaction=False)
        for hit, fallback_ms in hits:
            captured = event_time_ms(hit, fallback_ms)
            start = window_start_ms(captured, a.dedupe_window_s)
            aid = derive_alert_id(hit.deployment_id, hit.subject_id, start)
            await self._script(
                keys=[
                    self.keys.alert(aid),
                    self.keys.hits(aid),
                    self.keys.cams(aid),
                    self.keys.index(hit.deployment_id),
                    self.keys.tombstone(hit.deployment_id),
                ],
                args=[
                    hit.hit_id,
                    hit.camera_id,
                    captured,
                    repr(float(hit.score)),
                    encode(hit.probe),
                    hit.crop_id,
                    ttl,
                    aid,
                    hit.deployment_id,
                    hit.subject_id,
                    hit.watchlist_id,
                    hit.category,
                    repr(float(hit.threshold)),
                    start,
                    hit.trace.traceparent,
                    now,
                ],
                client=pipe,
            )
        replies = await pipe.execute()
        out: list[HitResult] = []
        for (hit, _), reply in zip(hits, replies, strict=True):
            code = Applied(int(reply[0]))
            state = parse_state_reply(reply) if code > Applied.DUPLICATE else None
            out.append(HitResult(hit, code, state))
        return out
