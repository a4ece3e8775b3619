"""Subscribing to alerts with the delivery rules built in.

LFR delivers alerts at least once: each alert is raised on ``lfr.alerts.v1`` and its later revisions (more
sightings, an officer's decision) follow on ``lfr.alert-updates.v1``; after a producer crash a record can
arrive twice, and revisions from the API and from the alerting stage can interleave. A subscriber therefore
has to de-duplicate by ``alert_id``, keep the highest ``revision`` and commit only what it has handled.
:class:`AlertSubscriber` does exactly that, so a handler sees each alert revision that is newer than the
last one it saw, and an offset is committed only after the handler for its record has returned: a crash
or a handler error leads to redelivery, never to a lost alert. Handlers should still be idempotent on
``(alert_id, revision)``: a record handled just before a crash or a rebalance arrives again.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError

from lfr.client.latest import LatestRevisions
from lfr.client.payloads import PayloadError, decode_alert, decode_alert_json
from lfr.client.topics import JSON_TOPICS, PROTOBUF_TOPICS, VERSION_HEADER, topic_version
from lfr.v1.alert_pb2 import Alert

log = logging.getLogger(__name__)

# Group timings that make rejoins take seconds on the embedded broker and suit Apache Kafka too.
DEFAULT_CONSUMER_CONFIG: dict[str, Any] = {
    "session_timeout_ms": 6_000,
    "heartbeat_interval_ms": 1_000,
    "rebalance_timeout_ms": 10_000,
    "auto_offset_reset": "earliest",
}


@dataclass(frozen=True)
class AlertDelivery:
    """One alert revision handed to the handler, with where it came from."""

    alert: Alert
    topic: str
    partition: int
    offset: int
    key: str | None
    first: bool  # no earlier revision of this alert_id was handled by this subscriber

    @property
    def alert_id(self) -> str:
        return self.alert.alert_id

    @property
    def revision(self) -> int:
        return int(self.alert.revision)


AlertHandler = Callable[[AlertDelivery], Awaitable[None]]


class AlertSubscriber:
    """Consumes the alert topics in a consumer group and calls ``handler`` once per newer revision.

    ``json_mirror=True`` reads the JSON mirror topics instead of the protobuf ones (same records, same
    rules). Extra keyword arguments go to :class:`aiokafka.AIOKafkaConsumer` (TLS, SASL, client id...).
    ``skipped`` counts records not handed to the handler, by reason: ``duplicate`` (same revision again),
    ``older`` (a lower revision after a higher one), ``invalid`` (not an Alert) and ``other_version``.
    ``commits_refused`` counts commits a rebalance refused: their records come again (at least once).
    """

    def __init__(
        self,
        handler: AlertHandler,
        *,
        bootstrap_servers: str,
        group_id: str,
        json_mirror: bool = False,
        topics: Sequence[str] | None = None,
        latest: LatestRevisions | None = None,
        max_records: int = 500,
        **consumer_config: Any,
    ) -> None:
        if not group_id:
            raise ValueError("a group_id is required: offsets are committed for the group")
        self.handler = handler
        self.topics = tuple(topics or (JSON_TOPICS if json_mirror else PROTOBUF_TOPICS))
        self.latest = latest if latest is not None else LatestRevisions()
        self.max_records = max_records
        self.skipped: Counter[str] = Counter()
        self.handled = 0
        self.commits_refused = 0
        self._config = {
            **DEFAULT_CONSUMER_CONFIG,
            **consumer_config,
            "bootstrap_servers": bootstrap_servers,
            "group_id": group_id,
            "enable_auto_commit": False,
        }
        self._consumer: AIOKafkaConsumer | None = None
        self._stop = asyncio.Event()

    async def start(self) -> None:
        self._stop.clear()
        self._consumer = AIOKafkaConsumer(*self.topics, **self._config)
        await self._consumer.start()

    async def stop(self) -> None:
        self._stop.set()
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    async def __aenter__(self) -> AlertSubscriber:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def request_stop(self) -> None:
        """Ends :meth:`run` after the batch in hand (its handled records are committed)."""
        self._stop.set()

    async def run(self, poll_timeout_ms: int = 1000) -> None:
        """Poll until :meth:`request_stop`; a handler error stops the loop (its record is not committed)."""
        while not self._stop.is_set():
            await self.poll(poll_timeout_ms)

    def assignment(self) -> set[TopicPartition]:
        return set(self._consumer.assignment()) if self._consumer is not None else set()

    async def poll(self, timeout_ms: int = 1000) -> int:
        """Fetch one batch, hand each newer revision to the handler, commit; returns how many were handled.

        If a handler raises, the records handled before it are committed, every partition of the batch
        is rewound to its first unhandled record, and the error propagates: calling :meth:`poll` again
        retries that record.
        """
        consumer = self._consumer
        if consumer is None:
            raise RuntimeError("subscriber not started")
        batch = await consumer.getmany(timeout_ms=timeout_ms, max_records=self.max_records)
        done: dict[TopicPartition, int] = {}
        handled = 0
        try:
            for tp, records in batch.items():
                for record in records:
                    handled += await self._one(record)
                    done[tp] = record.offset + 1
        finally:
            await self._commit(consumer, done)
            for tp, records in batch.items():
                if records and done.get(tp) != records[-1].offset + 1:
                    self._rewind(consumer, tp, done.get(tp, records[0].offset))
        return handled

    def _rewind(self, consumer: AIOKafkaConsumer, tp: TopicPartition, offset: int) -> None:
        try:
            consumer.seek(tp, offset)
        except IllegalStateError:
            pass  # revoked meanwhile: its next owner starts from the last commit anyway

    async def _commit(self, consumer: AIOKafkaConsumer, offsets: dict[TopicPartition, int]) -> None:
        if not offsets:
            return
        try:
            await consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            self.commits_refused += 1
            # A rebalance took the partitions away: their new owner reads from the last commit, so the
            # records are handled again there (at least once), never lost.
            log.warning("alert subscriber: commit refused (%s); records will be redelivered", exc)

    async def _one(self, record: ConsumerRecord[bytes, bytes]) -> int:
        where = f"{record.topic}[{record.partition}]@{record.offset}"
        expected = topic_version(record.topic)
        for name, value in record.headers or ():
            if name == VERSION_HEADER and bytes(value or b"").decode("ascii", "replace") != expected:
                self.skipped["other_version"] += 1
                log.warning("alert subscriber: %s is of another wire version; skipped", where)
                return 0
        try:
            if record.topic in JSON_TOPICS:
                alert = decode_alert_json(record.value)
            else:
                alert = decode_alert(record.value)
        except PayloadError as exc:
            self.skipped["invalid"] += 1
            log.warning("alert subscriber: %s skipped: %s", where, exc)
            return 0
        revision = int(alert.revision)
        if not self.latest.is_newer(alert.alert_id, revision):
            seen = self.latest.get(alert.alert_id)
            self.skipped["duplicate" if seen == revision else "older"] += 1
            return 0
        delivery = AlertDelivery(
            alert=alert,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key.decode("utf-8", "replace") if record.key is not None else None,
            first=not self.latest.known(alert.alert_id),
        )
        await self.handler(delivery)
        self.latest.record(alert.alert_id, revision)
        self.handled += 1
        return 1
