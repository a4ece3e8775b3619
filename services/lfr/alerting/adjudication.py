"""An officer's decision on an alert: recorded once, then published, audited and counted, resumably.

The decision is recorded in the alert store first (it is never overwritten); then it goes out on
lfr.adjudications.v1 together with the alert's new revision on lfr.alerts.v1 (webhooks and live streams
follow from that), is written to the audit log and is counted. Each finished step is remembered on the
alert, so when a step fails, sending the same decision again completes only what is missing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from redis.exceptions import RedisError

from lfr.alerting.publish import AlertPublisher, Change, Revision
from lfr.alerting.store import AlertState, AlertStore, Outcome, category_counter
from lfr.core import stats, topics
from lfr.core.audit import AuditLog
from lfr.core.config import Settings
from lfr.core.serde import encode
from lfr.core.timeutil import ts_from_ms
from lfr.v1.adjudication_pb2 import Adjudication
from lfr.v1.adjudication_pb2 import Outcome as OutcomePb

log = logging.getLogger(__name__)

OUTCOME_PB = {
    Outcome.MATCH: OutcomePb.OUTCOME_MATCH,
    Outcome.NO_MATCH: OutcomePb.OUTCOME_NO_MATCH,
    Outcome.UNABLE: OutcomePb.OUTCOME_UNABLE_TO_DECIDE,
}
OUTCOME_COUNTER = {
    Outcome.MATCH: stats.ADJ_MATCH,
    Outcome.NO_MATCH: stats.ADJ_NO_MATCH,
    Outcome.UNABLE: stats.ADJ_UNDECIDED,
}


class NotYetPublished(RuntimeError):
    """The decision is recorded but a later step failed; sending the same decision again finishes it."""


@dataclass(frozen=True)
class Decision:
    state: AlertState
    recorded_now: bool


class Adjudicator:
    """Records and completes decisions for one process (the API), over its Redis, producer and audit log."""

    def __init__(
        self,
        store: AlertStore,
        settings: Settings,
        redis: aioredis.Redis,
        producer: Callable[[], AIOKafkaProducer],
        audit: AuditLog,
    ) -> None:
        self.store = store
        self.settings = settings
        self.redis = redis
        self.producer = producer
        self.audit = audit

    async def decide(self, alert_id: str, outcome: Outcome, officer: str, note: str) -> Decision:
        """Record ``outcome`` (AlertNotFound, AlreadyAdjudicated when decided differently) and finish every
        step not yet done (NotYetPublished when one fails)."""
        state, recorded_now = await self.store.adjudicate(alert_id, outcome, officer, note)
        try:
            await self._finish(state)
        except (KafkaError, RedisError, OSError, TimeoutError) as exc:
            log.warning("adjudication of alert %s recorded but not fully published: %s", alert_id, exc)
            raise NotYetPublished(
                "decision recorded but not yet published; send the same decision again"
            ) from exc
        log.info("alert %s adjudicated %s", alert_id, state.adj_outcome)
        return Decision(state, recorded_now)

    async def _finish(self, state: AlertState) -> None:
        outcome = Outcome(state.adj_outcome)
        if "published" not in state.adj_steps:
            await self._publish(state, outcome)
            await self.store.add_adjudication_step(state, "published")
        if "audited" not in state.adj_steps:
            await self.audit.append(
                actor=state.adj_officer,
                action="alert.adjudicate",
                target=state.alert_id,
                reason=state.adj_note,
                details={
                    "deployment_id": state.deployment_id,
                    "outcome": outcome.value,
                    "adjudication_id": state.adjudication_id,
                    "subject_id": state.subject_id,
                    "watchlist_id": state.watchlist_id,
                    "alert_revision": str(state.revision),
                },
            )
            await self.store.add_adjudication_step(state, "audited")
        if "counted" not in state.adj_steps:
            name = OUTCOME_COUNTER[outcome]
            await self.store.add_adjudication_step(
                state, "counted", [name, category_counter(name, state.category)]
            )

    async def _publish(self, state: AlertState, outcome: Outcome) -> None:
        decision = Adjudication(
            adjudication_id=state.adjudication_id,
            alert_id=state.alert_id,
            deployment_id=state.deployment_id,
            outcome=OUTCOME_PB[outcome],
            officer=state.adj_officer,
            note=state.adj_note,
            decided_at=ts_from_ms(state.adj_at),
        )
        await self.producer().send_and_wait(
            topics.ADJUDICATIONS, encode(decision), key=state.deployment_id.encode()
        )
        await AlertPublisher(self.settings, self.redis, self.producer).publish(
            [Revision(state, Change.ADJUDICATED)]
        )
