"""Logging, Prometheus metrics and the health endpoints every service exposes.

Logs never carry images, embeddings or subject names at INFO: call sites log ids and counts only, and the
JSON formatter has no hook for payloads. Each service serves /healthz (its loop is alive), /readyz (its
dependencies answer) and /metrics on the health port, and writes the bound port to
``<data_dir>/run/<service>-<pid>.json`` so the demo and tests can find it when the port was 0.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from lfr.core.config import Settings

Check = Callable[[], Awaitable[bool] | bool]


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc)


def setup_logging(settings: Settings, service: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if settings.observability.log_json:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(f"%(asctime)s %(levelname)s {service} %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.observability.log_level)
    for noisy in ("aiokafka", "kafka", "pymilvus", "grpc", "faust", "mode", "httpx"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


class HealthServer:
    """Liveness, readiness and metrics over HTTP, independent of each service's main loop."""

    def __init__(self, settings: Settings, service: str) -> None:
        self.settings = settings
        self.service = service
        self._checks: dict[str, Check] = {}
        self._heartbeat = time.monotonic()
        self._runner: web.AppRunner | None = None
        self.port: int | None = None
        self.liveness_timeout_s = 60.0

    def add_check(self, name: str, check: Check) -> None:
        self._checks[name] = check

    def beat(self) -> None:
        """Called by the main loop; /healthz fails when it stops beating (a hung loop is restarted)."""
        self._heartbeat = time.monotonic()

    async def _healthz(self, _: web.Request) -> web.Response:
        age = time.monotonic() - self._heartbeat
        ok = age < self.liveness_timeout_s
        return web.json_response({"alive": ok, "loop_age_s": round(age, 2)}, status=200 if ok else 503)

    async def readiness(self) -> dict[str, bool]:
        results: dict[str, bool] = {}
        for name, check in self._checks.items():
            try:
                value = check()
                if asyncio.iscoroutine(value):
                    value = await asyncio.wait_for(value, timeout=3.0)
                results[name] = bool(value)
            except Exception:
                results[name] = False
        return results

    async def _readyz(self, _: web.Request) -> web.Response:
        results = await self.readiness()
        ok = all(results.values())
        return web.json_response({"ready": ok, "checks": results}, status=200 if ok else 503)

    async def _metrics(self, _: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def start(self) -> int:
        app = web.Application()
        app.add_routes(
            [
                web.get("/healthz", self._healthz),
                web.get("/readyz", self._readyz),
                web.get("/metrics", self._metrics),
            ]
        )
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        o = self.settings.observability
        site = web.TCPSite(self._runner, o.health_host, o.health_port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else o.health_port
        self._write_runfile()
        return int(self.port)

    def _runfile(self) -> Path:
        return self.settings.data_dir / "run" / f"{self.service}-{os.getpid()}.json"

    def _write_runfile(self) -> None:
        path = self._runfile()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            json.dumps(
                {
                    "service": self.service,
                    "pid": os.getpid(),
                    "health_url": f"http://{self.settings.observability.health_host}:{self.port}",
                }
            )
        )

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        self._runfile().unlink(missing_ok=True)


def find_services(data_dir: Path) -> list[dict[str, Any]]:
    """Run files of live services under the data dir (stale ones are skipped)."""
    out = []
    for f in sorted((data_dir / "run").glob("*.json")):
        try:
            doc = json.loads(f.read_text())
            os.kill(int(doc["pid"]), 0)
        except (OSError, ValueError, KeyError):
            continue
        out.append(doc)
    return out
