"""Publishing one alert revision everywhere it goes: Kafka (protobuf + JSON mirror), webhooks, live stream.

Shared by the alerting stage (new and updated alerts) and the API (adjudicated alerts) so every revision
takes the same path. On Kafka a sighting and its later history are kept apart: the first revision that
reaches Kafka goes to ``lfr.alerts.v1``, so a subscriber that acts on alerts sees each alert once; every
later revision (more sightings, an officer's decision) goes to ``lfr.alert-updates.v1``. "First" is decided
by the record's produced-mark in Redis, not by the revision number, so an alert whose first produce was lost
in a crash still lands on ``lfr.alerts.v1``.

The order is what keeps it loss-free: produce to Kafka and wait for the acks, then in one Redis transaction
enqueue the webhook deliveries and mark the revision produced (counting a new alert once, atomically with
the mark), then notify consoles. A crash before the mark leads to a re-emit of the same revision (see
dedupe.py), never to a missing one: on ``lfr.alerts.v1`` that is the only way an alert_id appears twice, and
subscribers de-duplicate by alert_id (on the updates topic by alert_id and revision, keeping the highest,
since revisions from the API and the stage may interleave).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer
from prometheus_client import Counter

from lfr.alerting.schemas import AlertOut, StreamEvent
from lfr.alerting.store import AlertKeys, AlertState, AlertStore
from lfr.alerting.webhooks import Outbox, envelope
from lfr.core import topics
from lfr.core.config import Settings
from lfr.core.serde import encode, to_json_dict

log = logging.getLogger(__name__)

PUBLISHED = Counter("lfr_alert_revisions_published_total", "Alert revisions produced", ["change"])


class Change(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    ADJUDICATED = "adjudicated"


@dataclass(frozen=True)
class Revision:
    state: AlertState
    change: Change


class AlertPublisher:
    """Publishes alert revisions; ``producer`` is a callable because the stage starts its producer late."""

    def __init__(
        self,
        settings: Settings,
        redis: aioredis.Redis,
        producer: Callable[[], AIOKafkaProducer],
        on_enqueued: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self.redis = redis
        self._producer = producer
        self._on_enqueued = on_enqueued
        self.store = AlertStore(settings, redis)
        self.outbox = Outbox(settings, redis)
        self.keys = AlertKeys(settings)

    async def publish(self, revisions: Sequence[Revision]) -> None:
        if not revisions:
            return
        producer = self._producer()
        futures = []
        bodies: list[str] = []
        for rev in revisions:
            alert = rev.state.to_proto()
            mirror = to_json_dict(alert)
            key = rev.state.deployment_id.encode()
            first = rev.state.published_revision == 0
            topic, mirror_topic = (
                (topics.ALERTS, topics.ALERTS_JSON)
                if first
                else (topics.ALERT_UPDATES, topics.ALERT_UPDATES_JSON)
            )
            futures.append(await producer.send(topic, encode(alert), key=key))
            futures.append(
                await producer.send(mirror_topic, json.dumps(mirror, separators=(",", ":")).encode(), key=key)
            )
            bodies.append(envelope(rev.change.value, mirror))
        for fut in futures:
            await fut

        # Webhook entries and the produced-mark (which also counts a new alert, once) in one transaction:
        # once a revision is marked, a redelivered hit no longer re-emits it, so its deliveries must already
        # be in the outbox by then.
        tx = self.redis.pipeline(transaction=True)
        enqueued = 0
        for rev, body in zip(revisions, bodies, strict=True):
            st = rev.state
            entries = self.outbox.entries_for(st.deployment_id, st.alert_id, st.revision, body)
            self.outbox.stage_enqueue(tx, entries)
            enqueued += len(entries)
        await self.store.stage_mark_published(tx, [r.state for r in revisions])
        await tx.execute()

        # Live stream last and best effort: consoles reload the list whenever their stream reconnects.
        pipe = self.redis.pipeline(transaction=False)
        for rev in revisions:
            event = StreamEvent(change=rev.change.value, alert=AlertOut.from_state(rev.state))
            pipe.publish(self.keys.channel(rev.state.deployment_id), event.model_dump_json())
            PUBLISHED.labels(rev.change.value).inc()
        await pipe.execute()
        if enqueued and self._on_enqueued is not None:
            self._on_enqueued()
