"""Crop publisher: aiokafka producer to lfr.crops.v1, keyed by camera_id, that never blocks the analysers.

Why never block: ingest is live; if the broker is slow or away, analysing must go on (so that the moment
the broker returns, current faces flow again) rather than stall behind a backlog. So the analysers hand
records to :meth:`CropPublisher.submit`, which only appends to a bounded pending queue; one sender task
moves records into the producer while fewer than ``ingest.max_in_flight`` are unacknowledged.

Drop policy, counted in ``lfr_ingest_publish_total{outcome}``:

* ``dropped_overflow``: the pending queue is full: the OLDEST pending record goes first (newer faces are
  worth more to a live operation);
* ``dropped_stale``: a record older than ``key_ttl_s - key_rotation_s`` is dropped unsent, because its
  data key may be gone before any embedder reads it (it would be unreadable: deleted by design anyway);
* ``dropped_shutdown``: still pending when the worker stopped and the flush deadline passed.

A record whose delivery failed (broker away longer than the producer's request timeout) goes back to the
front of the pending queue, so it is retried when the broker returns, unless it has gone stale. Batching
and compression come from the producer settings (``kafka.linger_ms``, ``kafka.compression``).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from lfr.core import topics
from lfr.core.bus import make_producer
from lfr.core.config import Settings
from lfr.core.retry import backoff_delay, wait_or_timeout
from lfr.ingest import metrics as m

log = logging.getLogger(__name__)

ProducerFactory = Callable[[Settings], AIOKafkaProducer]


@dataclass
class _Record:
    camera_id: str
    value: bytes
    captured_mono: float
    queued_mono: float


@dataclass
class PublisherStats:
    submitted: int = 0
    delivered: int = 0
    dropped_overflow: int = 0
    dropped_stale: int = 0
    dropped_shutdown: int = 0
    retried: int = 0
    producer_starts: int = 0


class CropPublisher:
    def __init__(
        self,
        settings: Settings,
        producer_factory: ProducerFactory | None = None,
        topic: str = topics.CROPS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.topic = topic
        self.clock = clock
        self._factory = producer_factory or (lambda s: make_producer(s, "ingest"))
        ing = settings.ingest
        self.max_in_flight = ing.max_in_flight
        self.max_pending = ing.max_pending or ing.max_in_flight
        c = settings.crypto
        self.max_age_s = float(max(c.key_ttl_s - c.key_rotation_s, 1))
        self.stats = PublisherStats()
        self._pending: deque[_Record] = deque()
        self._in_flight = 0
        self._wake = asyncio.Event()
        self._producer: AIOKafkaProducer | None = None
        self._closing = False
        self._abandoned = False  # after close(): late delivery callbacks were already counted
        self._refresh_metadata = False  # set after a failure: partitions may have changed meanwhile
        self._rng = random.Random()

    # ---- the analysers' side ----------------------------------------------------------------------------

    def submit(self, camera_id: str, value: bytes, captured_mono: float) -> None:
        """Queue one serialised FaceCrop; never blocks; drops the oldest pending record when full."""
        if self._closing:
            self.stats.dropped_shutdown += 1
            m.PUBLISH.labels("dropped_shutdown").inc()
            return
        self.stats.submitted += 1
        while len(self._pending) >= self.max_pending:
            self._pending.popleft()
            self.stats.dropped_overflow += 1
            m.PUBLISH.labels("dropped_overflow").inc()
        self._pending.append(_Record(camera_id, value, captured_mono, self.clock()))
        m.PUBLISH_PENDING.set(len(self._pending))
        self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._pending)

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def connected(self) -> bool:
        return self._producer is not None

    async def broker_ready(self) -> bool:
        """Readiness: the producer is started and the broker answers a metadata request."""
        if self._producer is None:
            return False
        try:
            await asyncio.wait_for(self._producer.client.fetch_all_metadata(), timeout=2.0)
            return True
        except (KafkaError, OSError, TimeoutError):
            return False

    # ---- the sender task --------------------------------------------------------------------------------

    async def _start_producer(self, stopping: asyncio.Event) -> bool:
        ing = self.settings.ingest
        attempt = 0
        while not stopping.is_set():
            producer = self._factory(self.settings)
            try:
                await producer.start()
                self._producer = producer
                self.stats.producer_starts += 1
                log.info("crop producer connected to %s", self.settings.kafka_bootstrap)
                return True
            except (KafkaError, OSError) as exc:
                await _quiet_stop(producer)
                attempt += 1
                delay = backoff_delay(attempt, ing.reconnect_initial_s, ing.reconnect_max_s, self._rng.random)
                log.warning("broker unavailable (%s); producer retry in %.1f s", type(exc).__name__, delay)
                await wait_or_timeout(stopping, delay)
        return False

    def _next_record(self) -> _Record | None:
        now = self.clock()
        while self._pending:
            rec = self._pending.popleft()
            if now - rec.queued_mono <= self.max_age_s:
                return rec
            self.stats.dropped_stale += 1
            m.PUBLISH.labels("dropped_stale").inc()
        return None

    def _requeue(self, rec: _Record) -> None:
        self._refresh_metadata = True
        if self.clock() - rec.queued_mono > self.max_age_s:
            self.stats.dropped_stale += 1
            m.PUBLISH.labels("dropped_stale").inc()
            return
        if len(self._pending) >= self.max_pending:
            # The queue is full of newer records: the failed one is the oldest, so it is the one dropped.
            self.stats.dropped_overflow += 1
            m.PUBLISH.labels("dropped_overflow").inc()
            return
        self.stats.retried += 1
        self._pending.appendleft(rec)
        self._wake.set()

    def _on_delivery(self, rec: _Record, fut: asyncio.Future[Any]) -> None:
        if self._abandoned:
            return
        self._in_flight -= 1
        m.PUBLISH_IN_FLIGHT.set(self._in_flight)
        self._wake.set()
        if fut.cancelled() or fut.exception() is not None:
            self._requeue(rec)
            return
        self.stats.delivered += 1
        m.PUBLISH.labels("delivered").inc()
        m.LATENCY.labels(rec.camera_id).observe(max(time.monotonic() - rec.captured_mono, 0.0))

    async def run(self, stopping: asyncio.Event) -> None:
        """Move pending records into the producer until ``stopping`` is set (then call :meth:`close`)."""
        if not await self._start_producer(stopping):
            return
        assert self._producer is not None
        while not stopping.is_set():
            if not self._pending or self._in_flight >= self.max_in_flight:
                self._wake.clear()
                waiter = asyncio.ensure_future(self._wake.wait())
                stopper = asyncio.ensure_future(stopping.wait())
                await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                stopper.cancel()
                continue
            rec = self._next_record()
            m.PUBLISH_PENDING.set(len(self._pending))
            if rec is None:
                continue
            try:
                await self._send(rec, stopping)
            except Exception:  # a client bug must not end publishing for the life of the pod
                log.exception("unexpected error while sending a crop; retrying in 1 s")
                self._requeue(rec)
                await wait_or_timeout(stopping, 1.0)

    async def _send(self, rec: _Record, stopping: asyncio.Event) -> None:
        assert self._producer is not None
        if self._refresh_metadata:
            # After an outage the topic may have been re-created with another partition count; a producer
            # keying onto a stale count would write to partitions that no longer exist.
            try:
                ok = await asyncio.wait_for(self._producer.client.force_metadata_update(), timeout=2.0)
                self._refresh_metadata = not ok
            except (KafkaError, OSError, TimeoutError):
                pass
        try:
            fut = await self._producer.send(self.topic, rec.value, key=rec.camera_id.encode())
        except (KafkaError, OSError) as exc:
            # No metadata or no room in the producer's buffer within its timeout: the broker is away.
            self._requeue(rec)
            log.warning("crop send failed (%s); %d pending", type(exc).__name__, len(self._pending))
            await wait_or_timeout(stopping, self.settings.ingest.reconnect_initial_s)
            return
        self._in_flight += 1
        m.PUBLISH_IN_FLIGHT.set(self._in_flight)
        fut.add_done_callback(lambda f, r=rec: self._on_delivery(r, f))

    async def _wait_wake(self, deadline: float) -> None:
        """Wait until a delivery completes (or the deadline passes)."""
        self._wake.clear()
        await wait_or_timeout(self._wake, max(deadline - time.monotonic(), 0.001))

    async def close(self, timeout_s: float = 5.0) -> None:
        """Flush what can be flushed within ``timeout_s``, count the rest as dropped, stop the producer."""
        self._closing = True
        producer = self._producer
        deadline = time.monotonic() + timeout_s
        if producer is not None:
            never = asyncio.Event()
            while self._pending and time.monotonic() < deadline:
                if self._in_flight >= self.max_in_flight:
                    await self._wait_wake(deadline)
                    continue
                rec = self._next_record()
                if rec is None:
                    break
                remaining = max(deadline - time.monotonic(), 0.01)
                try:
                    await asyncio.wait_for(self._send(rec, never), timeout=remaining)
                except TimeoutError:
                    self._requeue(rec)
                    break
            while self._in_flight and time.monotonic() < deadline:
                await self._wait_wake(deadline)
            self._producer = None
            try:
                # Stopping flushes the producer's own buffer; delivery callbacks still count outcomes.
                await asyncio.wait_for(producer.stop(), timeout=max(deadline - time.monotonic(), 1.0))
            except (TimeoutError, KafkaError, OSError):
                log.warning("producer did not stop cleanly within the shutdown deadline")
        left = len(self._pending) + self._in_flight
        self._abandoned = True
        if left:
            self.stats.dropped_shutdown += left
            m.PUBLISH.labels("dropped_shutdown").inc(left)
            log.warning("ingest stopping with %d crop(s) undelivered", left)
        self._pending.clear()
        self._in_flight = 0
        m.PUBLISH_PENDING.set(0)
        m.PUBLISH_IN_FLIGHT.set(0)


async def _quiet_stop(producer: AIOKafkaProducer) -> None:
    try:
        await producer.stop()
    except (KafkaError, OSError, RuntimeError):
        pass
