"""Per-case storage of retrospective search results in Redis, under the case's own retention period.

Keys (with the configured prefix, ``lfr:`` by default):

* ``<prefix>case:<case_ref>:search:<search_id>``: the result JSON (ids, scores, boxes; no images, no
  embeddings, no names), expiring ``retention`` after the search;
* ``<prefix>case:<case_ref>:searches``: a sorted set of the case's search ids by time, whose expiry is
  pushed forward with every search, so the index lives as long as its newest result;
* ``<prefix>case:<case_ref>:retention``: the case's retention in days, living as long as the index.

A case has one retention, because the material of one investigation is kept or disposed of together. The
first search sets it (the request's ``retention_days`` or ``retro.case_retention_days``); a later search
that asks for a different period changes it for the whole case, and every stored result's expiry is
recomputed from its own search time (results already past the new period are deleted at once); a search
that asks for nothing keeps the case's period. No period may exceed ``retro.max_case_retention_days``.
The search's audit record carries the period and any change, so who lengthened or shortened a case's
retention, and why, is on the hash-chained log; its result carries the change too
(``retention_changed_from_days``), so the officer who made it is told, not left to find out.

Why Redis with a TTL: retention is then enforced by the store itself, not by a purge job that might not
run; when the period ends the results are gone from every replica. A per-search key also lets one result
expire without rewriting the others.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis

from lfr.core.config import Settings
from lfr.core.redis_client import key as rkey
from lfr.core.redis_client import text
from lfr.core.timeutil import now_ms
from lfr.retro.schemas import SearchResult, check_case_ref

DAY_MS = 86_400_000


class CaseRetentionError(ValueError):
    """A requested retention period is outside what the settings allow."""


def check_retention_days(settings: Settings, days: int | None) -> int | None:
    """Refuse a period outside 1..max_case_retention_days; callers run it before connecting or decoding,
    so a refused search costs nothing and leaves nothing behind."""
    limit = settings.retro.max_case_retention_days
    if days is not None and not 1 <= days <= limit:
        raise CaseRetentionError(
            f"retention of {days} days is outside 1..{limit} (retro.max_case_retention_days)"
        )
    return days


@dataclass(frozen=True)
class Retention:
    days: int
    previous_days: int | None  # the case's period before this search; None for a new case

    @property
    def changed(self) -> bool:
        return self.previous_days is not None and self.previous_days != self.days


class CaseStore:
    def __init__(self, settings: Settings, redis: aioredis.Redis) -> None:
        self.settings = settings
        self.redis = redis

    def _index(self, case_ref: str) -> str:
        return rkey(self.settings, "case", case_ref, "searches")

    def _item(self, case_ref: str, search_id: str) -> str:
        return rkey(self.settings, "case", case_ref, "search", search_id)

    def _retention(self, case_ref: str) -> str:
        return rkey(self.settings, "case", case_ref, "retention")

    async def stored_days(self, case_ref: str) -> int | None:
        raw = await self.redis.get(self._retention(check_case_ref(case_ref)))
        return int(text(raw)) if raw is not None else None

    async def retention_days(self, case_ref: str) -> int:
        """The case's period, or the default for a case with nothing stored."""
        stored = await self.stored_days(case_ref)
        return stored if stored is not None else self.settings.retro.case_retention_days

    async def resolve(self, case_ref: str, requested: int | None) -> Retention:
        """The period a search on ``case_ref`` will store its result under, and the one it replaces."""
        check_retention_days(self.settings, requested)
        previous = await self.stored_days(case_ref)
        if requested is not None:
            return Retention(requested, previous)
        return Retention(
            previous if previous is not None else self.settings.retro.case_retention_days, previous
        )

    async def save(self, result: SearchResult, retention: Retention) -> None:
        case = check_case_ref(result.case_ref)
        idx = self._index(case)
        now = now_ms()
        ttl_ms = retention.days * DAY_MS
        entries: list[tuple[str, float]] = []
        if retention.changed:
            raw: list[tuple[bytes, float]] = await self.redis.zrange(idx, 0, -1, withscores=True)  # type: ignore[assignment]
            entries = [(text(member), float(score)) for member, score in raw]
        async with self.redis.pipeline(transaction=True) as pipe:
            for search_id, at_ms in entries:  # the whole case follows its new period
                ends = int(at_ms) + ttl_ms
                if ends <= now:
                    pipe.delete(self._item(case, search_id))
                    pipe.zrem(idx, search_id)
                else:
                    pipe.pexpireat(self._item(case, search_id), ends)
            pipe.set(self._item(case, result.search_id), result.model_dump_json(), px=ttl_ms)
            pipe.zadd(idx, {result.search_id: now})
            pipe.pexpire(idx, ttl_ms)
            pipe.set(self._retention(case), retention.days, px=ttl_ms)
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
