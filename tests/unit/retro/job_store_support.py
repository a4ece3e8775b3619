"""Running a coroutine against a JobStore on the module's real redis-server (conftest.redis_url)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import redis.asyncio as aioredis

from lfr.core.config import load_settings
from lfr.retro.import_jobs import JobStore

T = TypeVar("T")


def run_with_store(redis_url: str, body: Callable[[JobStore], Awaitable[T]]) -> T:
    """``body(store)`` in a fresh event loop with its own client, closed afterwards."""

    async def go() -> T:
        client = aioredis.Redis.from_url(redis_url)
        try:
            return await body(JobStore(load_settings(redis={"url": redis_url}), client))
        finally:
            await client.aclose()

    return asyncio.run(go())
