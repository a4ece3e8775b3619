"""The subscriber contract on live topics: alerts raised by the real alerting service on the embedded
broker are read with lfr.client and with confluent-kafka (librdkafka), and every record, key, header and
webhook delivery is checked against the committed AsyncAPI document and JSON Schemas.

One scenario feeds every test: a deployment with six subjects, each sighted twice (so each alert is raised
on lfr.alerts.v1 and updated on lfr.alert-updates.v1), delivered to a signed webhook too; then a duplicate
and a stale revision are injected by hand, as a producer crash would leave them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import jsonschema
import pytest
import yaml
from alerting_support import (
    ALERT_MIRRORS,
    ALERT_TOPICS,
    AlertTail,
    HitMaker,
    HitProducer,
    WebhookReceiver,
    alerting_running,
    settings_with,
)

from lfr.client import (
    AlertDelivery,
    AlertSubscriber,
    LatestRevisions,
    ReplayGuard,
    decode_alert,
    parse_webhook,
    verify_request,
)
from lfr.contracts.documents import (
    ASYNCAPI_FILE,
    DEFAULT_DIR,
    WEBHOOK_BODY_FILE,
    WEBHOOK_HEADERS_FILE,
    topic_schema_file,
)
from lfr.core import topics
from lfr.core.bus import make_producer
from lfr.core.config import Settings
from lfr.core.serde import encode, to_json_dict
from lfr.v1.alert_pb2 import Alert

pytestmark = pytest.mark.integration

SECRET = "contract-test-secret"
SUBJECTS = 6


def _validator(schema: dict[str, Any]) -> jsonschema.protocols.Validator:
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def _errors(validator: jsonschema.protocols.Validator, doc: Any) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message[:160]}" for e in validator.iter_errors(doc)]


@dataclass
class Contracts:
    """The committed documents, as a subscriber would load them."""

    asyncapi: dict[str, Any] = field(
        default_factory=lambda: yaml.safe_load((DEFAULT_DIR / ASYNCAPI_FILE).read_text())
    )

    def component(self, name: str) -> jsonschema.protocols.Validator:
        schema = {"$ref": f"#/components/schemas/{name}", "components": self.asyncapi["components"]}
        return _validator({"$schema": "http://json-schema.org/draft-07/schema#", **schema})

    def file(self, rel: str) -> jsonschema.protocols.Validator:
        return _validator(json.loads((DEFAULT_DIR / rel).read_text()))

    def channel(self, topic: str) -> dict[str, Any]:
        [channel] = [c for c in self.asyncapi["channels"].values() if c["address"] == topic]
        return dict(channel)


@dataclass
class Scenario:
    settings: Settings
    dep: str
    final: dict[str, int]  # alert_id -> highest revision on Kafka
    records: int  # protobuf alert records of the deployment (raised + updates + injected)
    receiver: WebhookReceiver
    injected: dict[str, int]  # alert_id -> revision of the stale copy injected onto the updates topic
    on_kafka: list[tuple[str, str, int]]  # (topic, alert_id, revision) of every protobuf record


@pytest.fixture(scope="module")
async def scenario(stack_settings: Settings) -> AsyncIterator[Scenario]:
    dep = f"contract-{uuid.uuid4().hex[:6]}"
    receiver = WebhookReceiver()
    await receiver.start()
    settings = settings_with(
        stack_settings,
        alerting={
            "webhooks": [{"name": "cad", "url": receiver.url, "secret": SECRET, "deployments": [dep]}],
            "webhook_backoff_initial_s": 0.2,
            "webhook_backoff_max_s": 2.0,
        },
    )
    maker = HitMaker(settings)
    try:
        async with (
            AlertTail(settings, ALERT_TOPICS) as tail,
            alerting_running(settings),
            HitProducer(settings) as hits,
        ):
            await hits.send([await maker.hit(dep, f"s-{i}", f"c1-{i}", score=0.7) for i in range(SUBJECTS)])

            def raised() -> bool:
                return len({a.alert_id for _, a in tail.alerts({dep}, topics.ALERTS)}) == SUBJECTS

            await tail.wait_until(raised, 60, "every alert raised")
            await hits.send([await maker.hit(dep, f"s-{i}", f"c2-{i}", score=0.9) for i in range(SUBJECTS)])

            def updated() -> bool:
                return sum(a.hit_count for a in _final_alerts(tail, dep).values()) == 2 * SUBJECTS

            await tail.wait_until(updated, 60, "every alert updated")
            final = {k: a.revision for k, a in _final_alerts(tail, dep).items()}
            await tail.wait_until(
                lambda: len(receiver.deliveries) >= len(tail.alerts({dep})), 60, "webhook deliveries"
            )
            # What a producer crash leaves behind: a raised alert again (same revision) and, on the updates
            # topic, a revision lower than one already there.
            raised_alert = tail.alerts({dep}, topics.ALERTS)[0][1]
            records_before = len(tail.alerts({dep}))
            stale = Alert()
            stale.CopyFrom(raised_alert)
            injected = {stale.alert_id: stale.revision}
            producer = make_producer(settings, "test-inject")
            await producer.start()
            try:
                key = dep.encode()
                await producer.send_and_wait(topics.ALERTS, encode(raised_alert), key=key)
                await producer.send_and_wait(topics.ALERT_UPDATES, encode(stale), key=key)
                for t in ALERT_MIRRORS:
                    mirror = json.dumps(to_json_dict(stale)).encode()
                    await producer.send_and_wait(t, mirror, key=key)
            finally:
                await producer.stop()
            await tail.wait_until(
                lambda: len(tail.alerts({dep})) >= records_before + 2, 30, "the injected records"
            )
            on_kafka = sorted(
                (t, a.alert_id, a.revision)
                for (_, a), t in zip(tail.alerts({dep}), _topics_of(tail, dep), strict=True)
            )
            yield Scenario(settings, dep, final, len(on_kafka), receiver, injected, on_kafka)
    finally:
        await receiver.stop()


def _topics_of(tail: AlertTail, dep: str) -> list[str]:
    """The topic of each of the deployment's records, in the order tail.alerts returns them."""
    out = []
    for (_, value), topic in zip(tail.records, tail.record_topics, strict=True):
        a = Alert()
        a.ParseFromString(value)
        if a.deployment_id == dep:
            out.append(topic)
    return out


def _highest(deliveries: list[AlertDelivery]) -> dict[str, int]:
    out: dict[str, int] = {}
    for d in deliveries:
        out[d.alert_id] = max(out.get(d.alert_id, 0), d.revision)
    return out


def _final_alerts(tail: AlertTail, dep: str) -> dict[str, Alert]:
    out: dict[str, Alert] = {}
    for _, a in tail.alerts({dep}):
        if a.alert_id not in out or a.revision > out[a.alert_id].revision:
            out[a.alert_id] = a
    return out


@contextlib.asynccontextmanager
async def _subscriber(
    settings: Settings, group: str, deliveries: list[AlertDelivery], fail_on: str | None = None, **kw: Any
) -> AsyncIterator[AlertSubscriber]:
    dep: str | None = kw.pop("dep", None)  # read once: the handler runs after the subscriber is built

    async def handle(d: AlertDelivery) -> None:
        if dep is not None and d.alert.deployment_id != dep:
            return  # other tests' alerts share the topics
        if fail_on is not None and d.alert_id == fail_on:
            raise RuntimeError("handler failed")
        deliveries.append(d)

    sub = AlertSubscriber(handle, bootstrap_servers=settings.kafka_bootstrap, group_id=group, **kw)
    async with sub:
        yield sub


async def _poll_until(sub: AlertSubscriber, done: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await sub.poll(timeout_ms=200)


async def test_webhook_deliveries_verify_and_match_the_contracts(scenario: Scenario) -> None:
    """First in the module: the deliveries must still be within the 300 s freshness window."""
    contracts = Contracts()
    body_schema = contracts.file(WEBHOOK_BODY_FILE)
    header_schema = contracts.file(WEBHOOK_HEADERS_FILE)
    canonical = {k.lower(): k for k in header_schema.schema["properties"]}
    guard = ReplayGuard()
    latest = LatestRevisions()
    deliveries = list(scenario.receiver.deliveries)
    assert deliveries
    for d in deliveries:
        assert verify_request(SECRET, d.body, d.headers, guard), "a genuine delivery is accepted"
        assert not verify_request(SECRET, d.body, d.headers, guard), "the same request again is a replay"
        assert not verify_request(SECRET, d.body + b" ", d.headers, ReplayGuard()), "an altered body"
        assert not verify_request("wrong-secret", d.body, d.headers, ReplayGuard())
        stale = {**d.headers, "X-LFR-Timestamp": str(int(d.headers["X-LFR-Timestamp"]) - 301)}
        assert not verify_request(SECRET, d.body, stale, ReplayGuard()), "timestamp is signed"
        named = {canonical.get(k.lower(), k): v for k, v in d.headers.items()}
        assert _errors(header_schema, named) == []
        assert _errors(body_schema, json.loads(d.body)) == []
        event = parse_webhook(d.body)
        if latest.is_newer(event.alert.alert_id, event.alert.revision):
            latest.record(event.alert.alert_id, event.alert.revision)
    assert {k: latest.get(k) for k in scenario.final} == scenario.final


@pytest.mark.parametrize("json_mirror", [False, True], ids=["protobuf", "json-mirror"])
async def test_lfr_client_hands_each_newer_revision_once(scenario: Scenario, json_mirror: bool) -> None:
    alert_schema = Contracts().component("lfr.v1.Alert")
    got: list[AlertDelivery] = []
    group = f"contract-client-{uuid.uuid4().hex[:6]}"
    async with _subscriber(scenario.settings, group, got, dep=scenario.dep, json_mirror=json_mirror) as sub:

        def caught_up() -> bool:
            latest = {d.alert_id: d.revision for d in got}
            # The two injected records are never newer than what was handled before them in their partition.
            return latest == scenario.final and sum(sub.skipped.values()) >= 2

        try:
            await _poll_until(sub, caught_up, 90, "every final revision through lfr.client")
        except AssertionError as exc:
            latest = {d.alert_id: d.revision for d in got}
            diff = {k: (latest.get(k), v) for k, v in scenario.final.items() if latest.get(k) != v}
            extra = sorted(set(latest) - set(scenario.final))
            raise AssertionError(
                f"{exc}; (handled, final) differ for {diff}; handled but not final: {extra}; "
                f"skipped {dict(sub.skipped)}; assignment {len(sub.assignment())} partitions"
            ) from None
    by_alert: dict[str, list[int]] = {}
    for d in got:
        by_alert.setdefault(d.alert_id, []).append(d.revision)
        assert d.key == scenario.dep, "records are keyed by deployment_id"
        assert d.topic in (ALERT_MIRRORS if json_mirror else ALERT_TOPICS)
        assert _errors(alert_schema, to_json_dict(d.alert)) == []
    for alert_id, revs in by_alert.items():
        assert revs == sorted(set(revs)), f"{alert_id}: revisions handed twice or out of order: {revs}"
        assert revs[-1] == scenario.final[alert_id]
    assert sum(d.first for d in got) == SUBJECTS, "first is set once per alert"


async def test_lfr_client_commits_only_after_the_handler_returns(scenario: Scenario) -> None:
    group = f"contract-commit-{uuid.uuid4().hex[:6]}"
    victim = sorted(scenario.final)[0]
    first: list[AlertDelivery] = []
    async with _subscriber(scenario.settings, group, first, fail_on=victim, dep=scenario.dep) as sub:
        with pytest.raises(RuntimeError, match="handler failed"):
            await _poll_until(sub, lambda: False, 90, "the failing handler")
        # The same subscriber retries the record it failed on: the partition was rewound. Other tests'
        # records share the topics, so the retry may come a few batches later.
        with pytest.raises(RuntimeError, match="handler failed"):
            await _poll_until(sub, lambda: False, 30, "the failed record retried")
        refused = sub.commits_refused
    assert victim not in {d.alert_id for d in first}
    again: list[AlertDelivery] = []
    async with _subscriber(scenario.settings, group, again, dep=scenario.dep) as sub:
        await _poll_until(
            sub, lambda: victim in {d.alert_id for d in again}, 60, "the failed record redelivered"
        )
        handled_before = {(d.topic, d.partition, d.offset) for d in first}
        await _poll_until(
            sub,
            lambda: _highest(first + again) == scenario.final,
            60,
            "the rest of the deployment's revisions",
        )
    # Everything the failed member handled was committed (up to the failing record), so the next member of
    # the group starts exactly at that record: no record handled is handed over twice, unless a rebalance
    # refused a commit (a member evicted on a loaded machine), where at-least-once allows the repeat.
    # Records are compared by position, not by (alert_id, revision): the new member starts with no memory
    # of revisions, so the injected stale copy further on is new to it, as it would be to a restarted
    # subscriber that keeps no state (docs/subscribers.md, rule 4).
    redelivered = [d for d in again if (d.topic, d.partition, d.offset) in handled_before]
    assert redelivered == [] or refused > 0, f"redelivered without a refused commit: {redelivered}"


async def test_confluent_kafka_reads_live_topics_that_match_the_contracts(scenario: Scenario) -> None:
    confluent_kafka = pytest.importorskip(
        "confluent_kafka", reason="confluent-kafka is in the dev extra (pip install -e '.[dev]')"
    )
    contracts = Contracts()
    alert_schema = contracts.component("lfr.v1.Alert")
    headers_schema = contracts.component("RecordHeaders")
    mirror_schemas = {t: contracts.file(topic_schema_file(t)) for t in ALERT_MIRRORS}
    wanted = (*ALERT_TOPICS, *ALERT_MIRRORS)
    consumer = confluent_kafka.Consumer(
        {
            "bootstrap.servers": scenario.settings.kafka_bootstrap,
            "group.id": f"contract-librdkafka-{uuid.uuid4().hex[:6]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )

    def read() -> list[Any]:
        consumer.subscribe(list(wanted))
        out: list[Any] = []
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                proto = sum(1 for m in out if m.topic() in ALERT_TOPICS)
                if proto >= scenario.records and len(out) >= 2 * scenario.records:
                    break
                continue
            if msg.error():
                raise AssertionError(f"librdkafka: {msg.error()}")
            if msg.key() == scenario.dep.encode():
                out.append(msg)
        consumer.commit(asynchronous=False)
        return out

    try:
        msgs = await asyncio.to_thread(read)
    finally:
        await asyncio.to_thread(consumer.close)
    proto = [m for m in msgs if m.topic() in ALERT_TOPICS]
    mirrors = [m for m in msgs if m.topic() in ALERT_MIRRORS]
    read = sorted(
        (m.topic(), decode_alert(m.value()).alert_id, decode_alert(m.value()).revision) for m in proto
    )
    assert read == scenario.on_kafka, "librdkafka reads every protobuf record aiokafka reads"
    assert len(mirrors) == len(proto), "every protobuf record has its JSON mirror"
    for m in msgs:
        assert _errors(headers_schema, {k: v.decode() for k, v in (m.headers() or [])}) == []
        assert contracts.channel(m.topic())["x-lfr-audience"] == "subscribers"
    proto_docs = sorted((to_json_dict(decode_alert(m.value())) for m in proto), key=_order)
    for doc in proto_docs:
        assert _errors(alert_schema, doc) == []
    mirror_docs = []
    for m in mirrors:
        doc = json.loads(m.value())
        assert _errors(mirror_schemas[m.topic()], doc) == [], m.topic()
        mirror_docs.append(doc)
    assert sorted(mirror_docs, key=_order) == proto_docs, "the JSON mirror carries the same records"
    latest = LatestRevisions()
    for doc in proto_docs:
        latest.record(doc["alert_id"], doc["revision"])
    assert {k: latest.get(k) for k in scenario.final} == scenario.final


def _order(doc: dict[str, Any]) -> tuple[str, int, str]:
    return (doc["alert_id"], doc["revision"], json.dumps(doc, sort_keys=True))
