"""`lfr status` (the operations view) and `lfr monitor` (the monitor stage)."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from lfr.core.cli import cli_settings


def status_command(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Lag per group and partition, members, throughput, camera health, key TTLs and the stack's parts."""
    from lfr.core.redis_client import make_redis
    from lfr.monitor.render import render
    from lfr.monitor.status import as_json as dump
    from lfr.monitor.status import collect

    settings = cli_settings()

    async def run() -> str:
        redis = make_redis(settings)
        try:
            status = await collect(settings, redis)
        finally:
            await redis.aclose()
        return dump(status) if as_json else render(status)

    typer.echo(asyncio.run(run()))


def monitor_command() -> None:
    """Run the operations monitor: windowed camera and deployment figures, silence and rate-jump events."""
    from lfr.monitor.stage import run_monitor

    run_monitor(cli_settings())
