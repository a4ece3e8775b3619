"""Signed webhooks on the real stack: a subscriber down for ~30 s gets every alert revision once it is
back; a subscriber that stays down ends in the dead letters, and a replay (through the CLI) delivers them."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import pytest
from alerting_support import (
    ALERT_TOPICS,
    AlertTail,
    HitMaker,
    HitProducer,
    WebhookReceiver,
    alerting_running,
    settings_with,
)
from typer.testing import CliRunner

from lfr.alerting.cli import webhooks_app
from lfr.alerting.webhooks import FAILED, Outbox
from lfr.client.webhooks import verify_signature
from lfr.core.config import Settings, get_settings
from lfr.core.redis_client import make_redis

pytestmark = pytest.mark.integration

SECRET = "webhook-test-secret"
OUTAGE_S = 30.0


def _subscriber(receiver: WebhookReceiver, dep: str) -> dict[str, object]:
    return {"name": "cad", "url": receiver.url, "secret": SECRET, "deployments": [dep]}


@pytest.mark.long
async def test_subscriber_down_30s_then_up_receives_every_alert(stack_settings: Settings) -> None:
    dep = f"hooks-{uuid.uuid4().hex[:6]}"
    receiver = WebhookReceiver()
    settings = settings_with(
        stack_settings,
        alerting={
            "webhooks": [_subscriber(receiver, dep)],
            "webhook_backoff_initial_s": 0.2,
            "webhook_backoff_max_s": 3.0,
            "webhook_max_attempts": 100,
        },
    )
    maker = HitMaker(settings)
    failed_before = FAILED.labels("cad")._value.get()
    redis = make_redis(settings)
    try:
        async with (
            AlertTail(settings, ALERT_TOPICS) as tail,
            alerting_running(settings),
            HitProducer(settings) as producer,
        ):
            down_since = time.monotonic()
            await producer.send([await maker.hit(dep, f"s-{i}", f"c1-{i}", score=0.7) for i in range(20)])
            await producer.send(
                [await maker.hit(dep, f"s-{i}", f"c2-{i}", score=0.9) for i in range(0, 20, 2)]
            )
            published: set[tuple[str, int]] = set()

            def all_published() -> bool:
                published.clear()
                published.update((a.alert_id, a.revision) for _, a in tail.alerts({dep}))
                final = {a.alert_id: a.hit_count for _, a in tail.alerts({dep})}
                return len(final) == 20 and sum(final.values()) == 30

            await tail.wait_until(all_published, 60, "the alerts and their updates on Kafka")
            await asyncio.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down_since)))

            outbox = Outbox(settings, redis)
            waiting = {e.id: e for e in await outbox.waiting()}
            assert len(waiting) == len(published) and not receiver.deliveries
            assert max(e.attempts for e in waiting.values()) >= 4, "no retries during the outage"
            assert FAILED.labels("cad")._value.get() - failed_before >= len(published)
            assert await outbox.list_dead() == []

            await receiver.start()
            up_at = time.monotonic()

            def delivered_all() -> bool:
                got = {
                    (d.doc["alert"]["alert_id"], int(d.doc["alert"]["revision"])) for d in receiver.deliveries
                }
                return published <= got

            await tail.wait_until(delivered_all, 30, "every revision delivered after the outage")
            caught_up_s = time.monotonic() - up_at
            for _ in range(40):
                if await outbox.pending() == 0:
                    break
                await asyncio.sleep(0.1)
            assert await outbox.pending() == 0 and await outbox.list_dead() == []
    finally:
        await receiver.stop()
        await redis.aclose()

    ids = [d.headers["X-LFR-Delivery"] for d in receiver.deliveries]
    assert set(ids) == set(waiting)
    for d in receiver.deliveries:
        assert d.headers["X-LFR-Event"] == "alert"
        assert d.headers["Content-Type"].startswith("application/json")
        assert verify_signature(SECRET, d.body, d.headers["X-LFR-Timestamp"], d.headers["X-LFR-Signature"])
        assert not verify_signature(
            "wrong", d.body, d.headers["X-LFR-Timestamp"], d.headers["X-LFR-Signature"]
        )
        doc = d.doc
        assert doc["type"] == "lfr.alert.v1" and doc["alert"]["deployment_id"] == dep
        assert "display_name" not in d.body.decode()
    print(
        f"webhooks: {len(published)} revisions held through a {OUTAGE_S:.0f}s outage, all delivered "
        f"{caught_up_s:.1f}s after the receiver came back"
    )


def _cli(settings: Settings, *args: str) -> str:
    env = {
        "LFR_REDIS__URL": settings.redis_url,
        "LFR_REDIS__KEY_PREFIX": settings.redis.key_prefix,
        "LFR_KAFKA__BOOTSTRAP_SERVERS": settings.kafka_bootstrap,
        "LFR_DATA_DIR": str(settings.data_dir),
    }
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(webhooks_app, list(args), env=env)
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    return result.output


async def test_subscriber_that_stays_down_dead_letters_then_replay_delivers(stack_settings: Settings) -> None:
    dep = f"dead-{uuid.uuid4().hex[:6]}"
    receiver = WebhookReceiver()
    settings = settings_with(
        stack_settings,
        alerting={
            "webhooks": [_subscriber(receiver, dep)],
            "webhook_backoff_initial_s": 0.05,
            "webhook_backoff_max_s": 0.2,
            "webhook_max_attempts": 3,
        },
    )
    maker = HitMaker(settings)
    redis = make_redis(settings)
    outbox = Outbox(settings, redis)
    try:
        async with alerting_running(settings), HitProducer(settings) as producer:
            await producer.send([await maker.hit(dep, f"s-{i}", f"c-{i}") for i in range(5)])
            deadline = time.monotonic() + 30
            while len(await outbox.list_dead("cad")) < 5:
                assert time.monotonic() < deadline, "deliveries did not reach the dead letters"
                await asyncio.sleep(0.1)
            assert await outbox.pending() == 0

            listed = json.loads(await asyncio.to_thread(_cli, settings, "list-dead", "--json"))
            assert len(listed) == 5
            assert all(e["attempts"] == 3 and e["subscriber"] == "cad" for e in listed)
            assert all(e["last_error"] == "ConnectError" for e in listed)
            assert "replayed 0" in await asyncio.to_thread(_cli, settings, "replay", "--subscriber", "other")

            await receiver.start()
            out = await asyncio.to_thread(_cli, settings, "replay", "--subscriber", "cad")
            assert "replayed 5 deliveries" in out
            deadline = time.monotonic() + 20
            while len(receiver.deliveries) < 5:
                assert time.monotonic() < deadline, "replayed deliveries did not arrive"
                await asyncio.sleep(0.05)
            assert await outbox.list_dead() == []
            assert "no dead letters" in await asyncio.to_thread(_cli, settings, "list-dead")
    finally:
        await receiver.stop()
        await redis.aclose()
    assert {d.doc["alert"]["alert_id"] for d in receiver.deliveries} == {e["alert_id"] for e in listed}
    for d in receiver.deliveries:
        assert verify_signature(SECRET, d.body, d.headers["X-LFR-Timestamp"], d.headers["X-LFR-Signature"])
