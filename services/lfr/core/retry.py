"""Waiting between attempts: jittered exponential backoff and an interruptible sleep.

Why shared: cameras reconnecting, the crop producer reconnecting, webhook retries and the stages' retry
loops all wait the same way; one definition keeps their jitter identical (a fleet that failed together must
not retry in lockstep) and every wait interruptible by shutdown.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable


def backoff_delay(
    failures: int, initial_s: float, max_s: float, rng: Callable[[], float] = random.random
) -> float:
    """Delay after ``failures`` consecutive failures (counting from 1): exponential, capped, jittered.

    "Equal jitter": with ``d = min(max_s, initial_s * 2**(failures - 1))`` the delay is uniform in
    ``[d/2, d]``, so retries spread out while the delay still grows.
    """
    if failures < 1:
        raise ValueError("failures count from 1")
    d = min(max_s, initial_s * (2.0 ** min(failures - 1, 62)))
    return d / 2 + rng() * d / 2


async def wait_or_timeout(event: asyncio.Event, timeout_s: float) -> bool:
    """Wait until ``event`` is set or ``timeout_s`` passes; True when the event is set."""
    try:
        await asyncio.wait_for(event.wait(), timeout=timeout_s)
    except TimeoutError:
        return event.is_set()
    return True
