"""The small composition root every service process shares: logging, health server, signals, shutdown.

A service supplies an async ``main(ctx)``; SIGTERM/SIGINT set ``ctx.stopping`` and the service is expected
to finish its current batch, flush, commit and return. A second signal cancels it outright.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from lfr.core.config import Settings
from lfr.core.observability import HealthServer, setup_logging
from lfr.core.retry import wait_or_timeout

log = logging.getLogger(__name__)


@dataclass
class ServiceContext:
    settings: Settings
    name: str
    health: HealthServer
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _on_stop: list[Callable[[], None]] = field(default_factory=list)

    def on_stop(self, callback: Callable[[], None]) -> None:
        """Register a synchronous callback run when a stop signal arrives (e.g. ``stage.stop``)."""
        self._on_stop.append(callback)

    def request_stop(self) -> None:
        if not self.stopping.is_set():
            log.info("%s stopping", self.name)
            self.stopping.set()
            for cb in self._on_stop:
                cb()

    async def heartbeat_loop(self, interval_s: float = 5.0) -> None:
        while not self.stopping.is_set():
            self.health.beat()
            await wait_or_timeout(self.stopping, interval_s)


async def _serve(settings: Settings, name: str, main: Callable[[ServiceContext], Awaitable[None]]) -> None:
    health = HealthServer(settings, name)
    ctx = ServiceContext(settings, name, health)
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    signals_seen = 0

    def on_signal() -> None:
        nonlocal signals_seen
        signals_seen += 1
        if signals_seen == 1:
            ctx.request_stop()
        elif task is not None:
            task.cancel()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    port = await health.start()
    log.info("%s health on %s:%d", name, settings.observability.health_host, port)
    beat = asyncio.create_task(ctx.heartbeat_loop())
    try:
        await main(ctx)
    finally:
        ctx.request_stop()
        beat.cancel()
        await health.stop()
        log.info("%s stopped", name)


def run_service(settings: Settings, name: str, main: Callable[[ServiceContext], Awaitable[None]]) -> None:
    setup_logging(settings, name)
    try:
        asyncio.run(_serve(settings, name, main))
    except asyncio.CancelledError:
        log.warning("%s cancelled by a second signal", name)
