"""The API context's lazy parts: built once on first use, even when the first requests arrive together."""

from __future__ import annotations

import asyncio

from lfr.api.context import Lazy


async def test_a_lazy_part_is_built_once_for_concurrent_first_requests() -> None:
    builds = 0

    async def build() -> object:
        nonlocal builds
        builds += 1
        await asyncio.sleep(0.05)  # slow, like loading face models in a worker thread
        return object()

    part: Lazy[object] = Lazy(build)
    assert part.built is None
    got = await asyncio.gather(*(part.get() for _ in range(10)))
    assert builds == 1 and all(g is got[0] for g in got) and part.built is got[0]


async def test_a_part_handed_in_is_used_without_building() -> None:
    async def build() -> str:
        raise AssertionError("must not build a part that was handed in")

    part: Lazy[str] = Lazy(build)
    part.set("stand-in")
    assert await part.get() == "stand-in"
