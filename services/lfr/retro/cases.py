"""Per-case storage of retrospective search results in Redis, under the case's retention period.

Keys (with the configured prefix, ``lfr:`` by default):

* ``<prefix>case:<case_ref>:search:<search_id>``: the result JSON (ids, scores, boxes; no images, no
  embeddings, no names), expiring ``retention`` after the search;
* ``<prefix>case:<case_ref>:searches``: a sorted set of the case's search ids by time, whose expiry is
  pushed forward with every search, so the index lives as long as its newest result.

Why Redis with a TTL: retention is then enforced by the store itself, not by a purge job that might not
run; when the period ends the results are gone from every replica. A per-search key also lets one result
expire without rewriting the others.
"""

from __future__ import annotations

import redis.asyncio as aioredis

from lfr.core.config import Settings
from lfr.core.redis_client import key as rkey
from lfr.core.redis_client import text
from lfr.core.timeutil import now_ms
from lfr.retro.schemas import SearchResult, check_case_ref


class CaseStore:
    def __init__(self, settings: Settings, redis: aioredis.Redis, days: int | None = None) -> None:
        self.settings = settings
        self.redis = redis
        self.retention_days = days or settings.retro.case_retention_days
        self.ttl_s = self.retention_days * 86_400

    def _index(self, case_ref: str) -> str:
        return rkey(self.settings, "case", case_ref, "searches")

    def _item(self, case_ref: str, search_id: str) -> str:
        return rkey(self.settings, "case", case_ref, "search", search_id)

    async def save(self, result: SearchResult) -> None:
        case = check_case_ref(result.case_ref)
        idx = self._index(case)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(self._item(case, result.search_id), result.model_dump_json(), ex=self.ttl_s)
            pipe.zadd(idx, {result.search_id: now_ms()})
            pipe.expire(idx, self.ttl_s)
            await pipe.execute()

    async def list(self, case_ref: str) -> list[SearchResult]:
        """The case's unexpired results, oldest first; expired ids are pruned from the index."""
        case = check_case_ref(case_ref)
        idx = self._index(case)
        ids = [text(v) for v in await self.redis.zrange(idx, 0, -1) if isinstance(v, bytes | str)]
        if not ids:
            return []
        raw = await self.redis.mget([self._item(case, i) for i in ids])
        gone = [i for i, v in zip(ids, raw, strict=True) if v is None]
        if gone:
            await self.redis.zrem(idx, *gone)
        return [SearchResult.model_validate_json(v) for v in raw if v is not None]

    async def ttl(self, case_ref: str, search_id: str) -> int:
        return int(await self.redis.ttl(self._item(check_case_ref(case_ref), search_id)))
