"""A Stage worker process for the no-loss tests: copies each input record's coordinates to an output topic.

Run as ``python -m tests.integration.core.stage_copy_worker BOOTSTRAP IN OUT GROUP [--delay-first S]``.
``--delay-first`` holds the first batch so the process can be killed before it ever commits.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from collections.abc import Sequence

from aiokafka import ConsumerRecord

from lfr.core.config import load_settings
from lfr.core.stage import Output, Stage


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("bootstrap")
    p.add_argument("src")
    p.add_argument("dst")
    p.add_argument("group")
    p.add_argument("--delay-first", type=float, default=0.0)
    p.add_argument("--per-batch-sleep", type=float, default=0.02)
    a = p.parse_args()
    settings = load_settings(kafka={"bootstrap_servers": a.bootstrap})
    first = True

    async def handler(records: Sequence[ConsumerRecord]) -> list[Output]:
        nonlocal first
        if first and a.delay_first:
            first = False
            await asyncio.sleep(a.delay_first)
        await asyncio.sleep(a.per_batch_sleep)
        return [Output(a.dst, f"{r.partition}:{r.offset}:{os.getpid()}".encode(), key=r.key) for r in records]

    stage = Stage(settings, "copy", a.src, a.group, handler, batch_size=20, batch_wait_ms=50)

    async def run() -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stage.stop)
        print("ready", flush=True)
        await stage.run()

    asyncio.run(run())


if __name__ == "__main__":
    main()
