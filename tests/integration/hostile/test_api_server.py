"""The api as `lfr api` serves it (uvicorn, the real lifespan and stack): lock-outs and rate limits follow
the client named by a trusted proxy's X-Forwarded-For, not the proxy, and an untrusted sender cannot
choose its own address that way."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn
from alerting_support import settings_with

from lfr.api.app import create_app, server_config
from lfr.core.config import Settings

pytestmark = pytest.mark.integration

TOKEN = "tok-xff-operator-41"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _serve(settings: Settings) -> AsyncIterator[str]:
    server = uvicorn.Server(server_config(settings, create_app(settings)))
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(30):
            while not server.started:  # noqa: ASYNC110 (uvicorn exposes no event)
                await asyncio.sleep(0.05)
        yield f"http://127.0.0.1:{settings.api.port}"
    finally:
        server.should_exit = True
        await task


def _settings(stack: Settings, trusted: list[str]) -> Settings:
    return settings_with(
        stack,
        api={
            "port": _free_port(),
            "api_keys": [{"name": "pc", "key": TOKEN, "roles": ["operator"]}],
            "lockout_failures": 3,
            "forwarded_allow_ips": trusted,
        },
    )


@pytest.fixture
async def behind_proxy(stack_settings: Settings) -> AsyncIterator[str]:
    async for url in _serve(_settings(stack_settings, ["127.0.0.1"])):
        yield url


@pytest.fixture
async def untrusted(stack_settings: Settings) -> AsyncIterator[str]:
    async for url in _serve(_settings(stack_settings, ["192.0.2.1"])):
        yield url


async def test_lockout_follows_the_client_a_trusted_proxy_names(behind_proxy: str) -> None:
    async with httpx.AsyncClient(base_url=behind_proxy) as c:
        guesser = {"X-Forwarded-For": "203.0.113.7", "Authorization": "Bearer guess"}
        assert [(await c.get("/api/v1/alerts", headers=guesser)).status_code for _ in range(3)] == [401] * 3
        officer = {"X-Forwarded-For": "203.0.113.8", "Authorization": f"Bearer {TOKEN}"}
        assert (await c.get("/api/v1/console/session", headers=officer)).status_code == 200
        locked = {**guesser, "Authorization": f"Bearer {TOKEN}"}
        r = await c.get("/api/v1/console/session", headers=locked)
        assert r.status_code == 429 and r.headers["x-content-type-options"] == "nosniff"


async def test_an_untrusted_sender_cannot_pick_its_address(untrusted: str) -> None:
    async with httpx.AsyncClient(base_url=untrusted) as c:
        for i in range(3):  # a new forged address each time: all count against the real one
            r = await c.get(
                "/api/v1/alerts", headers={"X-Forwarded-For": f"198.51.100.{i}", "Authorization": "Bearer x"}
            )
            assert r.status_code == 401
        r = await c.get(
            "/api/v1/console/session",
            headers={"X-Forwarded-For": "198.51.100.99", "Authorization": f"Bearer {TOKEN}"},
        )
        assert r.status_code == 429
