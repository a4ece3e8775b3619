"""A loss-free consumer-group stage: consume a batch, produce its outputs, wait for acks, then commit.

Why not faust agents here: faust-streaming 0.15.3 was measured skipping runs of offsets after restarts
(its resume-before-seek race), and a lost crop can be a missed wanted person. This loop commits an offset
only after every output derived from the records before it is acknowledged by the broker, so a crash at
any point leads to redelivery, never loss. Redelivery is harmless because every output id is derived from
its input (``lfr.core.ids``). See docs/stream-processing.md.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from prometheus_client import Counter, Gauge, Histogram
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from lfr.core import topics
from lfr.core.bus import make_consumer, make_producer
from lfr.core.config import Settings
from lfr.core.retry import wait_or_timeout
from lfr.core.serde import (
    MAX_RECORD_BYTES,
    VERSION_HEADER,
    OversizedRecord,
    SerdeError,
    check_version,
    encode,
    version_header,
)
from lfr.core.timeutil import ts_now
from lfr.v1.dead_letter_pb2 import DeadLetter

log = logging.getLogger(__name__)

RECORDS = Counter("lfr_stage_records_total", "Records consumed and committed", ["stage", "partition"])
OUTPUTS = Counter("lfr_stage_outputs_total", "Records produced", ["stage", "topic"])
DEAD = Counter("lfr_stage_dead_letters_total", "Records sent to the dead-letter topic", ["stage", "reason"])
RETRIES = Counter("lfr_stage_batch_retries_total", "Batches retried after a failure", ["stage"])
COMMIT_FAILURES = Counter("lfr_stage_commit_failures_total", "Commits refused (rebalance)", ["stage"])
BATCH_SECONDS = Histogram(
    "lfr_stage_batch_seconds",
    "Time to process, produce and commit one batch",
    ["stage"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
ASSIGNED = Gauge("lfr_stage_assigned_partitions", "Partitions currently assigned", ["stage"])


@dataclass(frozen=True)
class Output:
    topic: str
    value: bytes
    key: bytes | None = None
    headers: tuple[tuple[str, bytes], ...] = ()


# Failures of the broker, Redis or Milvus: the batch is retried whole, nothing is dead-lettered.
TRANSIENT = (
    KafkaError,
    OSError,
    ConnectionError,
    TimeoutError,
    RedisConnectionError,
    RedisTimeoutError,
)


def _describe(exc: BaseException) -> str:
    """The error type and its first line: enough to find the bug, short enough for a dead letter."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"[:500]


class BatchHandler(Protocol):
    async def __call__(self, records: Sequence[ConsumerRecord]) -> list[Output]: ...


def dead_letter(stage: str, record: ConsumerRecord, reason: str, error: str, keep_payload: bool) -> Output:
    """A DeadLetter output; the payload is dropped unless the caller knows it holds no readable biometrics."""
    DEAD.labels(stage, reason).inc()
    msg = DeadLetter(
        stage=stage,
        source_topic=record.topic,
        source_partition=record.partition,
        source_offset=record.offset,
        key=record.key or b"",
        payload=(record.value or b"") if keep_payload else b"",
        reason=reason,
        error_type=error[:500],
        failed_at=ts_now(),
        attempts=1,
    )
    return Output(topics.DEADLETTER, encode(msg), key=stage.encode())


class Stage:
    """Runs one handler over one topic as a member of a consumer group."""

    def __init__(
        self,
        settings: Settings,
        name: str,
        topic: str,
        group_id: str,
        handler: BatchHandler,
        *,
        batch_size: int = 64,
        batch_wait_ms: int = 50,
        retry_initial_s: float = 0.2,
        retry_max_s: float = 10.0,
        max_record_bytes: int = MAX_RECORD_BYTES,
    ) -> None:
        self.settings = settings
        self.name = name
        self.topic = topic
        self.group_id = group_id
        self.handler = handler
        self.batch_size = batch_size
        self.batch_wait_ms = batch_wait_ms
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self.max_record_bytes = max_record_bytes
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._stop = asyncio.Event()
        self.ready = False

    def stop(self) -> None:
        self._stop.set()

    @property
    def producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise RuntimeError("stage not started")
        return self._producer

    async def run(self) -> None:
        self._producer = make_producer(self.settings, self.name)
        self._consumer = make_consumer(
            self.settings, self.topic, group_id=self.group_id, client_suffix=self.name
        )
        await self._producer.start()
        await self._consumer.start()
        self.ready = True
        log.info("stage %s consuming %s as group %s", self.name, self.topic, self.group_id)
        try:
            while not self._stop.is_set():
                batch = await self._consumer.getmany(
                    timeout_ms=self.batch_wait_ms, max_records=self.batch_size
                )
                ASSIGNED.labels(self.name).set(len(self._consumer.assignment()))
                records = [r for part in batch.values() for r in part]
                if records:
                    await self._process_until_done(records)
        finally:
            self.ready = False
            await self._shutdown()

    def _screen(self, records: list[ConsumerRecord]) -> tuple[list[ConsumerRecord], list[Output]]:
        """Refuse, before any handler sees them, records that are too large or of another wire version."""
        accepted: list[ConsumerRecord] = []
        refused: list[Output] = []
        for r in records:
            try:
                if r.value is not None and len(r.value) > self.max_record_bytes:
                    raise OversizedRecord(
                        f"record of {len(r.value):,} bytes exceeds {self.max_record_bytes:,}"
                    )
                check_version(r.topic, r.headers)
            except SerdeError as exc:
                refused.append(dead_letter(self.name, r, exc.reason, str(exc), keep_payload=False))
                continue
            accepted.append(r)
        return accepted, refused

    async def _handle(self, records: list[ConsumerRecord]) -> list[Output]:
        """The handler's outputs; a record that makes the handler fail on its own is dead-lettered.

        A handler bug triggered by one hostile record would otherwise crash the worker, and the record would
        crash every worker that takes over its partition (a poison pill) while crop keys expire. So a failing
        batch is retried record by record: records that fail alone go to the dead-letter topic with the
        error type, the rest go on. When every record of a batch fails alone the fault is not in the records
        (a broken dependency, a bug hit by everything): that is raised, as before.
        """
        accepted, outputs = self._screen(records)
        if not accepted:
            return outputs
        try:
            return outputs + await self.handler(accepted)
        except TRANSIENT:
            raise
        except Exception as exc:
            first: Exception = exc
        failed: list[tuple[ConsumerRecord, Exception]] = []
        if len(accepted) == 1:
            failed.append((accepted[0], first))
        else:
            for r in accepted:
                try:
                    outputs.extend(await self.handler([r]))
                except TRANSIENT:
                    raise
                except Exception as err:
                    failed.append((r, err))
            if len(failed) == len(accepted):
                raise first
        for r, error in failed:
            log.error(
                "stage %s: a record failed its handler (%s); dead-lettered", self.name, type(error).__name__
            )
            outputs.append(dead_letter(self.name, r, "handler_error", _describe(error), keep_payload=False))
        return outputs

    async def _process_until_done(self, records: list[ConsumerRecord]) -> None:
        delay = self.retry_initial_s
        while True:
            try:
                with BATCH_SECONDS.labels(self.name).time():
                    outputs = await self._handle(records)
                    await self._produce(outputs)
                    await self._commit(records)
                return
            except TRANSIENT as exc:
                # Transient: broker, Redis or Milvus away. Nothing is committed, so retrying is safe; outputs
                # are idempotent by id. A stop request leaves the batch uncommitted for redelivery.
                RETRIES.labels(self.name).inc()
                log.warning(
                    "stage %s batch failed (%s: %s); retrying in %.1fs",
                    self.name,
                    type(exc).__name__,
                    exc,
                    delay,
                )
                if self._stop.is_set():
                    return
                if await wait_or_timeout(self._stop, delay):
                    return
                delay = min(delay * 2, self.retry_max_s)

    async def _produce(self, outputs: list[Output]) -> None:
        producer = self.producer
        futures = []
        for out in outputs:
            headers = list(out.headers)
            if not any(name == VERSION_HEADER for name, _ in headers):
                headers.append(version_header(out.topic))
            futures.append(await producer.send(out.topic, out.value, key=out.key, headers=headers))
        if futures:
            await asyncio.gather(*futures)
        for out in outputs:
            OUTPUTS.labels(self.name, out.topic).inc()

    async def _commit(self, records: list[ConsumerRecord]) -> None:
        assert self._consumer is not None
        offsets: dict[TopicPartition, int] = {}
        counts: dict[int, int] = {}
        for r in records:
            tp = TopicPartition(r.topic, r.partition)
            offsets[tp] = max(offsets.get(tp, 0), r.offset + 1)
            counts[r.partition] = counts.get(r.partition, 0) + 1
        try:
            await self._consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            # The partitions moved to another member during the batch: it will redeliver these records and
            # produce the same ids again. Loss is impossible, duplicates are absorbed downstream.
            COMMIT_FAILURES.labels(self.name).inc()
            log.warning("stage %s commit refused after rebalance: %s", self.name, exc)
            return
        for partition, n in counts.items():
            RECORDS.labels(self.name, str(partition)).inc(n)

    async def _shutdown(self) -> None:
        if self._consumer is not None:
            try:
                await self._consumer.stop()
            except Exception as exc:  # shutdown must go on to close the producer
                log.warning("stage %s consumer stop: %s", self.name, exc)
        if self._producer is not None:
            try:
                await self._producer.stop()
            except Exception as exc:
                log.warning("stage %s producer stop: %s", self.name, exc)
