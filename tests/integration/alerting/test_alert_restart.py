"""SIGKILL of `lfr alert` mid-stream, then a restart: no alert and no webhook delivery is lost.

The worker runs as a real process (``python -m lfr.alerting``, what ``lfr alert`` runs) against the real
broker and Redis; hits keep arriving while it is killed and while its successor waits for the dead member's
session to time out. Afterwards every alert must be on lfr.alerts.v1 at its final hit count, and the webhook
subscriber must have received that final revision, correctly signed.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from alerting_support import (
    ALERT_TOPICS,
    AlertTail,
    HitMaker,
    HitProducer,
    WebhookReceiver,
    settings_with,
    skip_to_end,
)

from lfr.alerting.dedupe import alert_id_for
from lfr.client.webhooks import verify_signature
from lfr.core import stats, topics
from lfr.core.config import Settings
from lfr.core.redis_client import make_redis
from lfr.core.timeutil import ms_from_ts, now_ms

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
WINDOW_S = 60
SECRET = "restart-test-secret"


def _spawn(config: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LFR_")}
    env["LFR_CONFIG"] = str(config)
    return subprocess.Popen(
        [sys.executable, "-m", "lfr.alerting"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("ab"),
    )


async def _health(settings: Settings, pid: int) -> dict[str, Any]:
    """The worker's /readyz and /metrics, found through the run file it writes under the data dir."""
    runfile = settings.data_dir / "run" / f"alerting-{pid}.json"
    async with httpx.AsyncClient(timeout=5) as client:
        for _ in range(100):
            if runfile.exists():
                break
            await asyncio.sleep(0.1)
        url = json.loads(runfile.read_text())["health_url"]
        ready = (await client.get(f"{url}/readyz")).json()
        metrics = (await client.get(f"{url}/metrics")).text
    return {"ready": ready, "metrics": metrics}


@pytest.mark.long
async def test_sigkill_mid_stream_then_restart_loses_nothing(
    stack_settings: Settings, tmp_path: Path
) -> None:
    dep = f"restart-{uuid.uuid4().hex[:6]}"
    receiver = WebhookReceiver()
    settings = settings_with(
        stack_settings,
        alerting={
            "dedupe_window_s": WINDOW_S,
            "webhooks": [{"name": "cad", "url": receiver.url, "secret": SECRET, "deployments": [dep]}],
            "webhook_backoff_initial_s": 0.1,
            "webhook_backoff_max_s": 1.0,
        },
    )
    config = tmp_path / "alerting.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "data_dir": str(settings.data_dir),
                "kafka": {"bootstrap_servers": settings.kafka_bootstrap},
                "redis": {"url": settings.redis_url, "key_prefix": settings.redis.key_prefix},
                "alerting": {
                    "group_id": settings.alerting.group_id,
                    "dedupe_window_s": WINDOW_S,
                    "webhooks": [
                        {"name": "cad", "url": receiver.url, "secret": SECRET, "deployments": [dep]}
                    ],
                    "webhook_backoff_initial_s": 0.1,
                    "webhook_backoff_max_s": 1.0,
                },
            }
        )
    )
    log = tmp_path / "alerting.log"
    await skip_to_end(settings, settings.alerting.group_id)

    rng = random.Random(11)
    maker = HitMaker(settings)
    base = (now_ms() // (WINDOW_S * 1000)) * WINDOW_S * 1000 - 5 * WINDOW_S * 1000
    hits = [
        await maker.hit(
            dep,
            f"subject-{rng.randrange(40):02d}",
            crop_id=f"crop-{i}",
            camera_id=f"cam-{rng.randrange(3)}",
            captured_ms=base + rng.randrange(0, 120_000),
            score=round(rng.uniform(0.6, 0.99), 4),
        )
        for i in range(600)
    ]
    expected: dict[str, int] = defaultdict(int)
    for h in hits:
        expected[alert_id_for(h, ms_from_ts(h.captured_at), WINDOW_S)] += 1

    await receiver.start()
    first = _spawn(config, log)
    second: subprocess.Popen[bytes] | None = None
    produced = 0
    try:
        async with AlertTail(settings, ALERT_TOPICS) as tail, HitProducer(settings) as producer:

            async def feed() -> None:
                nonlocal produced
                for i in range(0, len(hits), 20):
                    await producer.send(hits[i : i + 20])
                    produced = i + 20
                    await asyncio.sleep(0.25)

            feeding = asyncio.create_task(feed())

            def distinct_alerts() -> int:
                return len({a.alert_id for _, a in tail.alerts({dep})})

            await tail.wait_until(lambda: distinct_alerts() >= 15, 60, "the first worker's alerts")
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=10)
            killed_at_produced = produced
            seen_at_kill = distinct_alerts()
            second = _spawn(config, log)

            await feeding
            assert killed_at_produced < len(hits), "all hits were produced before the kill: nothing proved"

            def complete() -> bool:
                final: dict[str, int] = {}
                for _, a in tail.alerts({dep}):
                    final[a.alert_id] = max(final.get(a.alert_id, 0), a.hit_count)
                return all(final.get(aid, 0) >= n for aid, n in expected.items())

            await tail.wait_until(complete, 120, "every alert after the restart")
            assert seen_at_kill < len(expected), "the first worker finished everything before the kill"
            alerts = [a for _, a in tail.alerts({dep})]

            await tail.wait_until(
                lambda: all(receiver.latest_revisions().get(aid, 0) >= n for aid, n in expected.items()),
                60,
                "every alert's final revision delivered by webhook",
            )
            assert second is not None
            health = await _health(settings, second.pid)
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
        await receiver.stop()

    assert health["ready"] == {"ready": True, "checks": {"kafka": True, "redis": True}}
    assert "lfr_alerts_created_total" in health["metrics"]
    assert "lfr_alert_hit_to_alert_seconds_bucket" in health["metrics"]
    assert second is not None and second.returncode == 0, "SIGTERM must stop the worker cleanly"
    assert {a.alert_id for a in alerts} == set(expected)
    # Every alert was raised on lfr.alerts.v1 (a crash may raise one twice, always under the same alert_id).
    assert {a.alert_id for _, a in tail.alerts({dep}, topic=topics.ALERTS)} == set(expected)
    final: dict[str, tuple[int, int]] = {}
    for a in alerts:
        if a.revision >= final.get(a.alert_id, (0, 0))[0]:
            final[a.alert_id] = (a.revision, a.hit_count)
    assert {aid: hc for aid, (_, hc) in final.items()} == dict(expected)

    for d in receiver.deliveries:
        assert verify_signature(
            SECRET, d.body, d.headers.get("X-LFR-Timestamp"), d.headers.get("X-LFR-Signature")
        ), "a webhook delivery failed signature verification"
        assert d.doc["alert"]["deployment_id"] == dep

    redis = make_redis(settings)
    try:
        counted = (await stats.totals(redis, settings, dep)).get(stats.ALERTS, 0)
    finally:
        await redis.aclose()
    # Counted exactly once, although the kill lands right after alerts reach Kafka (before they are marked).
    assert counted == len(expected)
    print(
        f"SIGKILL after {killed_at_produced}/{len(hits)} hits produced, {seen_at_kill}/{len(expected)} "
        f"alerts seen; all {len(expected)} alerts complete after restart; {len(receiver.deliveries)} "
        "webhook deliveries verified"
    )
