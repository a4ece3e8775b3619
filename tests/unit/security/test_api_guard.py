"""API hardening through the app `lfr api` serves: body limits (declared and streamed), per-token rate
limits, lock-out after bad tokens, CORS closed by default, security headers, and tokens absent from logs."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from lfr.api.app import create_app
from lfr.api.auth import authenticate
from lfr.api.limits import Lockout, TokenBuckets
from lfr.core.config import Settings, load_settings

OPERATOR = "op-token-7f3a9c2e41"
ADMIN = "admin-token-0b5d8e6f17"
KEYS = [
    {"name": "op", "key": OPERATOR, "roles": ["operator"]},
    {"name": "admin", "key": ADMIN, "roles": ["watchlist-admin"]},
]


def _settings(tmp_path: Path, **api: Any) -> Settings:
    return load_settings(data_dir=str(tmp_path), api={"api_keys": KEYS, **api})


async def _client(settings: Settings) -> httpx.AsyncClient:
    app = create_app(settings)
    app.state.ctx = object()  # the refusals tested here all happen before a route needs its context
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_security_headers_on_api_console_and_refusals(tmp_path: Path) -> None:
    async with await _client(_settings(tmp_path)) as c:
        for r in (await c.get("/healthz"), await c.get("/api/v1/alerts"), await c.get("/console/")):
            assert r.headers["x-content-type-options"] == "nosniff"
            assert r.headers["referrer-policy"] == "no-referrer"
            assert r.headers["x-frame-options"] == "DENY"
            assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
        console = await c.get("/console/")
        assert console.status_code == 200
        assert "script-src 'self'" in console.headers["content-security-policy"], "console keeps its own CSP"
        assert len(console.headers.get_list("content-security-policy")) == 1
        api = await c.get("/api/v1/alerts")
        assert api.status_code == 401 and api.headers["content-security-policy"].startswith(
            "default-src 'none'"
        )


async def test_cors_is_closed_by_default_and_opens_only_to_listed_origins(tmp_path: Path) -> None:
    preflight = {
        "Origin": "https://evil.example",
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization",
    }
    async with await _client(_settings(tmp_path)) as c:
        r = await c.options("/api/v1/alerts", headers=preflight)
        assert "access-control-allow-origin" not in r.headers
        r = await c.get("/healthz", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in r.headers
    async with await _client(_settings(tmp_path, cors_origins=["https://console.police.example"])) as c:
        r = await c.options("/api/v1/alerts", headers=preflight)
        assert "access-control-allow-origin" not in r.headers
        r = await c.options(
            "/api/v1/alerts", headers={**preflight, "Origin": "https://console.police.example"}
        )
        assert r.headers["access-control-allow-origin"] == "https://console.police.example"


async def test_oversized_bodies_are_refused_declared_or_streamed(tmp_path: Path) -> None:
    async with await _client(_settings(tmp_path, max_body_bytes=1000, max_upload_bytes=5000)) as c:
        r = await c.post("/api/v1/deployments", content=b"{" + b" " * 2000 + b"}", headers=_bearer(ADMIN))
        assert r.status_code == 413 and "exceeds 1,000 bytes" in r.json()["detail"]

        async def stream(n: int) -> AsyncIterator[bytes]:
            yield (
                b'--b\r\nContent-Disposition: form-data; name="image"; filename="x.jpg"\r\n'
                b"Content-Type: image/jpeg\r\n\r\n"
            )
            for _ in range(n):
                yield b"x" * 1000

        # No Content-Length: cut off while streaming, before the form parser spools it anywhere.
        r = await c.post(
            "/api/v1/watchlists/wl-1/subjects",
            content=stream(200),
            headers={**_bearer(ADMIN), "Content-Type": "multipart/form-data; boundary=b"},
        )
        assert r.status_code == 413 and "exceeds 70,536 bytes" in r.json()["detail"]
        r = await c.post(
            "/api/v1/deployments",
            content=stream(5),
            headers={**_bearer(ADMIN), "Content-Type": "application/json"},
        )
        assert r.status_code == 413


async def test_each_token_is_rate_limited_on_its_own(tmp_path: Path) -> None:
    async with await _client(_settings(tmp_path, rate_limit_per_minute=1, rate_limit_burst=3)) as c:
        codes = [
            (await c.get("/api/v1/console/session", headers=_bearer(OPERATOR))).status_code for _ in range(4)
        ]
        assert codes == [200, 200, 200, 429]
        r = await c.get("/api/v1/console/session", headers=_bearer(OPERATOR))
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        assert (await c.get("/api/v1/console/session", headers=_bearer(ADMIN))).status_code == 200


async def test_repeated_bad_tokens_lock_the_address_out(tmp_path: Path) -> None:
    async with await _client(_settings(tmp_path, lockout_failures=3)) as c:
        codes = [(await c.get("/api/v1/alerts", headers=_bearer(f"guess-{i}"))).status_code for i in range(3)]
        assert codes == [401, 401, 401]
        r = await c.get("/api/v1/console/session", headers=_bearer(OPERATOR))
        assert r.status_code == 429 and "failed sign-ins" in r.json()["detail"], "even a good token waits"
        # Missing tokens are not guesses: the console's sign-in page asks without one.
    async with await _client(_settings(tmp_path, lockout_failures=2)) as c:
        for _ in range(5):
            assert (await c.get("/api/v1/alerts")).status_code == 401
        assert (await c.get("/api/v1/console/session", headers=_bearer(OPERATOR))).status_code == 200


def test_limiters_refill_and_release_with_time() -> None:
    now = [0.0]
    buckets = TokenBuckets(per_minute=60, burst=2, clock=lambda: now[0])
    assert [buckets.take("k") for _ in range(2)] == [0.0, 0.0]
    assert buckets.take("k") == pytest.approx(1.0)
    now[0] = 1.0
    assert buckets.take("k") == 0.0
    lock = Lockout(failures=2, window_s=10, lock_s=60, clock=lambda: now[0])
    assert not lock.failed("a")
    now[0] = 20.0  # the first failure left the window
    assert not lock.failed("a") and lock.locked_for("a") == 0
    assert lock.failed("a") and lock.locked_for("a") == pytest.approx(60)
    now[0] = 81.0
    assert lock.locked_for("a") == 0


def test_token_comparison_is_by_digest_and_exact(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    assert authenticate(s, OPERATOR) is not None and authenticate(s, OPERATOR).name == "op"  # type: ignore[union-attr]
    for wrong in ("", OPERATOR[:-1], OPERATOR + "x", OPERATOR.upper(), "\udcff", "é" * 300):
        assert authenticate(s, wrong) is None


async def test_tokens_never_reach_the_logs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with await _client(_settings(tmp_path, lockout_failures=2)) as c:
        await c.get("/api/v1/console/session", headers=_bearer(OPERATOR))
        await c.get(f"/api/v1/alerts/stream?access_token={ADMIN}")
        await c.post(
            "/api/v1/deployments",
            content=b"{bad",
            headers={**_bearer(ADMIN), "Content-Type": "application/json"},
        )
        for bad in ("wrong-secret-1", "wrong-secret-2", "wrong-secret-3"):
            await c.get("/api/v1/alerts", headers=_bearer(bad))
    # The test's own HTTP client logs its request URLs; everything the server side logged is checked.
    server = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith(("httpx", "httpcore")))
    assert "locked out" in server, "the lock-out is logged (by address)"
    for secret in (OPERATOR, ADMIN, "wrong-secret-1", "wrong-secret-2"):
        assert secret not in server
