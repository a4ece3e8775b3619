"""Known secret values through a real run, then a grep of every log record it produced (DEBUG included).

The run: the alerting service (real stage, Redis, broker) turns a hit into an alert and delivers its signed
webhook to a local receiver that checks it with the reference verifier (and refuses the same request
replayed); the API serves alert reads with good, bad and query-string tokens; `lfr config show` prints the
settings. Secrets: API tokens, the webhook secret and a token in the webhook URL, the master alert key.
"""

from __future__ import annotations

import base64
import json
import logging
import socket
import uuid
from collections.abc import Iterator

import httpx
import pytest
from aiohttp import web
from alerting_support import ALERT_TOPICS, AlertTail, HitMaker, HitProducer, alerting_running, settings_with
from typer.testing import CliRunner

from lfr.api.app import create_app
from lfr.api.context import ApiContext
from lfr.client.webhooks import ReplayGuard, verify_request
from lfr.core.config import Settings, get_settings
from lfr.core.observability import setup_logging

pytestmark = pytest.mark.integration

TOKEN = "tok-operator-5c1e9a77d0b2"
AUDIT_TOKEN = "tok-auditor-83f0e4b6a91c"
HOOK_SECRET = "whsec-2b7d9f4e6a0c13"
URL_TOKEN = "urltok-9e8d7c6b5a41"
ALERT_KEY = bytes(range(100, 132))


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def captured(stack_settings: Settings) -> Iterator[Capture]:
    """The services' own logging set-up at DEBUG, plus a handler that keeps every formatted record."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    noisy = {n: logging.getLogger(n).level for n in ("aiokafka", "kafka", "pymilvus", "grpc", "httpx")}
    setup_logging(
        stack_settings.model_copy(
            update={"observability": stack_settings.observability.model_copy(update={"log_level": "DEBUG"})}
        ),
        "test",
    )
    capture = Capture()
    root.addHandler(capture)
    try:
        yield capture
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
        for name, level in noisy.items():
            logging.getLogger(name).setLevel(level)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_secrets_never_reach_the_logs(stack_settings: Settings, captured: Capture) -> None:
    port = _free_port()
    # Only this test's deployment reaches the hook: other tests' alerts share the broker.
    dep = f"dep-secrets-{uuid.uuid4().hex[:8]}"
    settings = settings_with(
        stack_settings,
        api={
            "api_keys": [
                {"name": "pc-1", "key": TOKEN, "roles": ["operator"]},
                {"name": "aud-1", "key": AUDIT_TOKEN, "roles": ["auditor"]},
            ]
        },
        crypto={"alert_key": base64.b64encode(ALERT_KEY).decode()},
        alerting={
            "webhooks": [
                {
                    "name": "cad",
                    "url": f"http://127.0.0.1:{port}/hook?token={URL_TOKEN}",
                    "secret": HOOK_SECRET,
                    "deployments": [dep],
                }
            ],
            "webhook_backoff_initial_s": 0.1,
        },
    )
    guard = ReplayGuard()
    received: list[tuple[bytes, dict[str, str]]] = []
    verdicts: list[bool] = []

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        if not received:  # the first attempt fails, so the retry path runs (and logs) too
            received.append((body, dict(request.headers)))
            return web.Response(status=503)
        ok = verify_request(HOOK_SECRET, body, dict(request.headers), guard)
        verdicts.append(ok)
        received.append((body, dict(request.headers)))
        return web.Response(status=204 if ok else 401)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app, access_log=None)  # the receiver is the test's, not LFR's: it logs nothing
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with alerting_running(settings), AlertTail(settings, ALERT_TOPICS) as tail:
            async with HitProducer(settings) as hits:
                await hits.send([await HitMaker(settings).hit(dep, "subj-1", f"crop-{uuid.uuid4().hex[:8]}")])
            await tail.wait_until(lambda: len(tail.alerts({dep})) >= 1, 30, "the alert")
            await tail.wait_until(lambda: len(verdicts) >= 1, 30, "the webhook delivery")
        assert verdicts == [True]
        # The delivered request, captured and sent again, is refused by the reference verifier.
        body, headers = received[-1]
        async with httpx.AsyncClient() as client:
            again = await client.post(f"http://127.0.0.1:{port}/hook", content=body, headers=headers)
        assert again.status_code == 401 and verdicts == [True, False]
    finally:
        await runner.cleanup()

    api = create_app(settings)
    api.state.ctx = await ApiContext.start(settings)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url="http://t") as c:
            r = await c.get(
                "/api/v1/alerts", params={"deployment": dep}, headers={"Authorization": f"Bearer {TOKEN}"}
            )
            assert r.status_code == 200, r.text
            assert (
                await c.get("/api/v1/audit/verify", params={"access_token": AUDIT_TOKEN})
            ).status_code == 200
            assert (
                await c.get("/api/v1/alerts", headers={"Authorization": f"Bearer {TOKEN}x"})
            ).status_code == 401
    finally:
        await api.state.ctx.close()

    webhooks = [{"name": "cad", "url": f"https://cad.example/h?token={URL_TOKEN}", "secret": HOOK_SECRET}]
    env = {
        "LFR_API__API_KEYS": json.dumps([{"name": "pc-1", "key": TOKEN, "roles": ["operator"]}]),
        "LFR_ALERTING__WEBHOOKS": json.dumps(webhooks),
        "LFR_CRYPTO__ALERT_KEY": base64.b64encode(ALERT_KEY).decode(),
        "LFR_DATA_DIR": str(settings.data_dir),
    }
    from lfr.cli import app as cli

    get_settings.cache_clear()
    try:
        shown = CliRunner().invoke(cli, ["config", "show"], env=env)
    finally:
        get_settings.cache_clear()
    assert shown.exit_code == 0, shown.output
    assert "********" in shown.output

    logs = "\n".join(captured.lines)
    assert "webhook" in logs and len(captured.lines) > 20, "the run logged (this test greps real output)"
    secrets = [
        TOKEN,
        AUDIT_TOKEN,
        HOOK_SECRET,
        URL_TOKEN,
        base64.b64encode(ALERT_KEY).decode(),
        ALERT_KEY.hex(),
    ]
    for secret in secrets:
        assert secret not in logs, f"a secret reached the logs: {secret[:6]}…"
        assert secret not in shown.output, f"lfr config show printed a secret: {secret[:6]}…"
