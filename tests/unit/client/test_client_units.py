"""lfr.client without a broker: the keep-the-highest-revision rule, the payload decoders, the webhook
verifier shared with alerting, and that the client imports nothing of the service."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import lfr.alerting.webhooks as alerting_webhooks
from lfr import client
from lfr.alerting.webhooks import envelope
from lfr.client import (
    LatestRevisions,
    PayloadError,
    ReplayGuard,
    decode_alert,
    decode_alert_json,
    parse_webhook,
    sign,
    verify_request,
)
from lfr.client import topics as client_topics
from lfr.core import serde, topics
from lfr.core.serde import encode, to_json_dict
from lfr.v1.alert_pb2 import ALERT_STATUS_CONFIRMED, Alert


def _alert(alert_id: str = "a1", revision: int = 1) -> Alert:
    a = Alert(alert_id=alert_id, deployment_id="dep-1", revision=revision, hit_count=2, best_score=0.8)
    a.camera_ids.extend(["cam-1", "cam-2"])
    a.first_seen.FromMilliseconds(1_800_000_000_000)
    return a


def test_latest_revisions_acts_on_new_and_higher_only() -> None:
    latest = LatestRevisions()
    assert latest.is_newer("a", 1) and not latest.known("a")
    latest.record("a", 1)
    assert not latest.is_newer("a", 1), "the same revision again (a producer re-emit)"
    assert latest.is_newer("a", 3)
    latest.record("a", 3)
    assert not latest.is_newer("a", 2), "a lower revision after a higher one"
    latest.record("a", 2)
    assert latest.get("a") == 3, "recording never lowers what is kept"


def test_latest_revisions_is_bounded_and_forgets_the_stalest() -> None:
    latest = LatestRevisions(max_alerts=3)
    for i in range(3):
        latest.record(f"a{i}", 1)
    latest.record("a0", 2)  # a0 changed most recently: a1 is now the stalest
    latest.record("a3", 1)
    assert len(latest) == 3 and not latest.known("a1") and latest.known("a0")
    with pytest.raises(ValueError):
        LatestRevisions(max_alerts=0)


def test_decoders_round_trip_protobuf_json_and_webhook_bodies() -> None:
    a = _alert(revision=4)
    a.status = ALERT_STATUS_CONFIRMED
    assert decode_alert(encode(a)) == a
    mirror = json.dumps(to_json_dict(a)).encode()
    assert decode_alert_json(mirror) == a
    event = parse_webhook(envelope("adjudicated", to_json_dict(a)))
    assert event.change == "adjudicated" and event.alert == a


def test_decoders_accept_added_fields_and_refuse_garbage() -> None:
    doc = {**to_json_dict(_alert()), "added_in_a_later_v1": {"x": 1}}
    assert decode_alert_json(json.dumps(doc).encode()).alert_id == "a1"
    for bad in (None, b"\xff\xff\xff", encode(Alert(deployment_id="d"))):
        with pytest.raises(PayloadError):
            decode_alert(bad)
    for bad_json in (b"not json", b"[1]", b'{"revision": "many"}', b"{}"):
        with pytest.raises(PayloadError):
            decode_alert_json(bad_json)
    body = json.loads(envelope("created", to_json_dict(_alert())))
    for broken in ({**body, "type": "lfr.alert.v2"}, {**body, "change": "deleted"}, {**body, "alert": 3}):
        with pytest.raises(PayloadError):
            parse_webhook(json.dumps(broken))


def test_client_topics_and_header_are_the_services() -> None:
    assert (client.ALERTS, client.ALERT_UPDATES) == (topics.ALERTS, topics.ALERT_UPDATES)
    assert (client.ALERTS_JSON, client.ALERT_UPDATES_JSON) == (topics.ALERTS_JSON, topics.ALERT_UPDATES_JSON)
    assert client.VERSION_HEADER == serde.VERSION_HEADER
    for t in (topics.ALERTS, topics.ALERTS_JSON, topics.CROPS):
        assert client_topics.topic_version(t) == serde.topic_version(t)


def test_alerting_signs_with_the_clients_code() -> None:
    """One implementation, one home: the service signs with the client's function and keeps no copy or
    alias of the verifying side, which callers import from lfr.client."""
    assert alerting_webhooks.sign is client.sign
    assert alerting_webhooks.SIGNATURE_HEADER is client.SIGNATURE_HEADER
    for name in ("verify_signature", "verify_request", "ReplayGuard", "DEFAULT_TOLERANCE_S"):
        assert not hasattr(alerting_webhooks, name), name
    assert set(alerting_webhooks.__all__) == {"Outbox", "WebhookWorker", "envelope"}
    body = envelope("created", to_json_dict(_alert())).encode()
    headers = {"x-lfr-timestamp": "1800000000", "x-lfr-signature": sign("s", 1_800_000_000, body)}
    guard = ReplayGuard()
    assert verify_request("s", body, headers, guard, now=1_800_000_010)
    assert not verify_request("s", body, headers, guard, now=1_800_000_011), "replayed"


def test_client_imports_none_of_the_service() -> None:
    code = (
        "import sys, lfr.client\n"
        "heavy = ('lfr.core', 'lfr.alerting', 'lfr.api', 'redis', 'httpx', 'fastapi', 'pydantic', 'numpy')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy or m.startswith(heavy)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
