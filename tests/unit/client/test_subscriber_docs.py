"""The examples in docs/subscribers.md, taken from the document: each compiles and imports what it names,
and the webhook receiver is run against signed, replayed, altered and malformed requests."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from lfr.alerting.webhooks import envelope
from lfr.client import sign
from lfr.core.serde import to_json_dict
from lfr.v1.alert_pb2 import Alert

DOC = Path(__file__).resolve().parents[3] / "docs" / "subscribers.md"
README = Path(__file__).resolve().parents[3] / "README.md"


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


def _load(marker: str) -> dict[str, Any]:
    [code] = [b for b in _blocks() if marker in b]
    scope: dict[str, Any] = {"__name__": "docs_example"}  # not __main__: define, do not run
    exec(compile(code, str(DOC), "exec"), scope)
    return scope


def test_every_example_compiles_and_the_readme_links_the_page() -> None:
    blocks = _blocks()
    assert len(blocks) >= 3
    for code in blocks:
        compile(code, str(DOC), "exec")
    assert "docs/subscribers.md" in README.read_text()


def test_lfr_client_example_names_what_the_client_has() -> None:
    scope = _load("AlertSubscriber(handle")
    assert callable(scope["handle"]) and callable(scope["main"])


def test_confluent_example_names_what_librdkafka_has() -> None:
    pytest.importorskip("confluent_kafka", reason="confluent-kafka is in the dev extra")
    scope = _load("from confluent_kafka import Consumer")
    assert scope["TOPICS"] == ["lfr.alerts.json.v1", "lfr.alert-updates.json.v1"]


@pytest.fixture
def receiver() -> Iterator[tuple[str, dict[str, Any]]]:
    scope = _load("class Hook(BaseHTTPRequestHandler)")
    server = scope["serve"](0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", scope
    finally:
        server.shutdown()
        server.server_close()


def _post(url: str, secret: bytes, body: bytes, delivery: str, ts: int | None = None) -> int:
    ts = int(time.time()) if ts is None else ts
    headers = {
        "Content-Type": "application/json",
        "X-LFR-Event": "alert",
        "X-LFR-Delivery": delivery,
        "X-LFR-Timestamp": str(ts),
        "X-LFR-Signature": sign(secret, ts, body),
    }
    return httpx.post(url, content=body, headers=headers, timeout=10).status_code


def test_webhook_receiver_example_accepts_once_and_refuses_the_rest(
    receiver: tuple[str, dict[str, Any]],
) -> None:
    url, scope = receiver
    secret = scope["SECRET"]
    alert = Alert(alert_id="a1", deployment_id="dep-1", revision=2)
    body = envelope("updated", to_json_dict(alert)).encode()
    ts = int(time.time())
    assert _post(url, secret, body, "d1", ts) == 204
    assert _post(url, secret, body, "d1", ts) == 401, "the same request again is a replay"
    assert _post(url, b"not the secret", body, "d2") == 401
    assert _post(url, secret, body, "d1", ts - 301) == 401, "stale"
    assert _post(url, secret, body, "d1", ts + 1) == 204, "a retry (new timestamp) of a done delivery"
    assert scope["latest"].get("a1") == 2 and scope["done_deliveries"] == {"d1"}
    older = envelope("created", to_json_dict(Alert(alert_id="a1", deployment_id="dep-1", revision=1)))
    assert _post(url, secret, older.encode(), "d3") == 204
    assert scope["latest"].get("a1") == 2, "a lower revision does not replace a higher one"
    assert _post(url, secret, json.dumps({"type": "other"}).encode(), "d4") == 400
