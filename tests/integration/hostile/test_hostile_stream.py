"""The consoles' live stream under hostile pub/sub messages (real Redis): bytes that are not UTF-8, text
that is not JSON, and JSON carrying newlines meant to forge server-sent events are dropped or re-framed;
the hub keeps running and the next real alert still reaches the console."""

from __future__ import annotations

import json
import uuid

import pytest
from alerting_support import settings_with

from lfr.alerting.store import AlertKeys
from lfr.alerting.stream import DROPPED, AlertHub, clean_event
from lfr.core.config import Settings
from lfr.core.redis_client import make_redis

pytestmark = pytest.mark.integration


async def test_malformed_pubsub_messages_do_not_stop_or_forge_the_stream(stack_settings: Settings) -> None:
    settings = settings_with(stack_settings)
    redis = make_redis(settings)
    hub = AlertHub(settings, redis)
    dep = f"dep-stream-{uuid.uuid4().hex[:8]}"
    channel = AlertKeys(settings).channel(dep)
    try:
        sub = await hub.subscribe(dep)
        dropped = DROPPED._value.get()
        for hostile in (
            b"\xff\xfe\xfd not utf-8",
            b'{"alert_id": "a"}\n\nevent: snapshot\ndata: {"forged": true}',
            b"[1, 2, 3]",
            b"{" * 5000,
        ):
            await redis.publish(channel, hostile)
        await redis.publish(channel, json.dumps({"alert_id": "a1", "note": "line one\nevent: forged"}))
        item = await sub.next(5.0)
        assert item is not None and "\n" not in item, "one line: cannot be split into forged events"
        assert json.loads(item) == {"alert_id": "a1", "note": "line one\nevent: forged"}
        assert DROPPED._value.get() - dropped == 4
        assert hub._task is not None and not hub._task.done(), "the hub is still running"
        await redis.publish(channel, json.dumps({"alert_id": "a2"}))
        assert json.loads(await sub.next(5.0) or "{}") == {"alert_id": "a2"}
    finally:
        await hub.aclose()
        await redis.aclose()


def test_clean_event_keeps_only_json_objects() -> None:
    assert clean_event(b'{"a": "x\\ny"}') == '{"a":"x\\ny"}'
    for bad in (b"\xff", b"", b"null", b"1", b'"s"', b"{", "[" * 100_000):
        assert clean_event(bad) is None
