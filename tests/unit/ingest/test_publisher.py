"""CropPublisher against a fake producer: never blocks, bounded, drops oldest first, resumes."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError

from lfr.core.config import load_settings
from lfr.ingest.publisher import CropPublisher


class FakeBroker:
    def __init__(self) -> None:
        self.down_starts = 0
        self.refuse_sends = False
        self.in_flight: list[tuple[asyncio.Future[Any], bytes]] = []
        self.acked: list[tuple[bytes, bytes]] = []
        self.starts = 0
        self.metadata_refreshes = 0

    def producer(self, _settings: Any) -> FakeProducer:
        return FakeProducer(self)

    def ack_all(self) -> None:
        for fut, value in self.in_flight:
            if not fut.done():
                fut.set_result(None)
                self.acked.append((b"", value))
        self.in_flight.clear()

    def fail_all(self) -> None:
        for fut, _ in self.in_flight:
            if not fut.done():
                fut.set_exception(KafkaTimeoutError())
        self.in_flight.clear()


class FakeClient:
    def __init__(self, broker: FakeBroker) -> None:
        self.broker = broker

    def force_metadata_update(self) -> asyncio.Future[bool]:
        self.broker.metadata_refreshes += 1
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        fut.set_result(not self.broker.refuse_sends)
        return fut

    async def fetch_all_metadata(self) -> None:
        if self.broker.refuse_sends:
            raise KafkaConnectionError("down")


class FakeProducer:
    def __init__(self, broker: FakeBroker) -> None:
        self.broker = broker
        self.client = FakeClient(broker)

    async def start(self) -> None:
        self.broker.starts += 1
        if self.broker.down_starts > 0:
            self.broker.down_starts -= 1
            raise KafkaConnectionError("down")

    async def stop(self) -> None:
        pass

    async def send(self, topic: str, value: bytes, key: bytes) -> asyncio.Future[Any]:
        if self.broker.refuse_sends:
            raise KafkaTimeoutError()
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.broker.in_flight.append((fut, value))
        return fut


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def make(broker: FakeBroker, max_in_flight: int = 3, clock: Clock | None = None) -> CropPublisher:
    s = load_settings(
        ingest={"max_in_flight": max_in_flight, "reconnect_initial_s": 0.01, "reconnect_max_s": 0.02},
        crypto={"key_ttl_s": 5, "key_rotation_s": 1},
        kafka={"bootstrap_servers": "127.0.0.1:1"},
    )
    return CropPublisher(s, producer_factory=broker.producer, clock=clock or Clock())


async def until(cond: Any) -> None:
    """Wait (at most 2 s) for ``cond()``; fails the test otherwise."""
    async with asyncio.timeout(2.0):
        while not cond():  # noqa: ASYNC110 (polls state the code under test owns)
            await asyncio.sleep(0.005)


def test_submit_never_blocks_and_drops_the_oldest_when_full() -> None:
    pub = make(FakeBroker(), max_in_flight=2)
    for i in range(5):
        pub.submit("cam", f"r{i}".encode(), 0.0)
    assert pub.pending == 2 and pub.stats.dropped_overflow == 3
    assert [r.value for r in pub._pending] == [b"r3", b"r4"]


async def test_in_flight_is_bounded_and_everything_is_delivered_once_acked() -> None:
    broker = FakeBroker()
    pub = make(broker, max_in_flight=3)
    stop = asyncio.Event()
    task = asyncio.create_task(pub.run(stop))
    for i in range(3):
        pub.submit("cam", f"a{i}".encode(), 0.0)
    await until(lambda: pub.in_flight == 3)
    for i in range(3):
        pub.submit("cam", f"b{i}".encode(), 0.0)
    await asyncio.sleep(0.05)
    assert pub.in_flight == 3 and pub.pending == 3  # the sender waits; the analysers did not
    broker.ack_all()
    await until(lambda: pub.in_flight == 3 and pub.pending == 0)
    broker.ack_all()
    await until(lambda: pub.stats.delivered == 6)
    stop.set()
    await task
    await pub.close()
    assert [v for _, v in broker.acked] == [b"a0", b"a1", b"a2", b"b0", b"b1", b"b2"]


async def test_failed_deliveries_are_retried_when_the_broker_returns() -> None:
    broker = FakeBroker()
    pub = make(broker, max_in_flight=3)
    stop = asyncio.Event()
    task = asyncio.create_task(pub.run(stop))
    pub.submit("cam", b"x", 0.0)
    pub.submit("cam", b"y", 0.0)
    await until(lambda: pub.in_flight == 2)
    broker.refuse_sends = True  # the broker goes away: in-flight fail, new sends time out
    broker.fail_all()
    await until(lambda: pub.stats.retried >= 2)
    await asyncio.sleep(0.05)
    assert pub.stats.delivered == 0 and not task.done()
    assert not await pub.broker_ready()
    broker.refuse_sends = False  # it is back
    await until(lambda: pub.in_flight == 2)
    assert broker.metadata_refreshes >= 1  # partitions may have changed while it was away
    assert await pub.broker_ready()
    broker.ack_all()
    await until(lambda: pub.stats.delivered == 2)
    assert sorted(v for _, v in broker.acked) == [b"x", b"y"]
    stop.set()
    await task
    await pub.close()


async def test_records_older_than_the_key_lifetime_are_dropped_unsent() -> None:
    broker = FakeBroker()
    clock = Clock()
    pub = make(broker, max_in_flight=3, clock=clock)
    pub.submit("cam", b"old", 0.0)
    clock.t = 4.5  # key_ttl_s 5 - key_rotation_s 1 = 4 s: the key may be gone before anyone reads it
    pub.submit("cam", b"new", 0.0)
    stop = asyncio.Event()
    task = asyncio.create_task(pub.run(stop))
    await until(lambda: pub.in_flight == 1)
    broker.ack_all()
    await until(lambda: pub.stats.delivered == 1)
    assert pub.stats.dropped_stale == 1 and broker.acked == [(b"", b"new")]
    stop.set()
    await task
    await pub.close()


async def test_producer_start_is_retried_while_the_broker_is_down() -> None:
    broker = FakeBroker()
    broker.down_starts = 3
    pub = make(broker)
    stop = asyncio.Event()
    task = asyncio.create_task(pub.run(stop))
    pub.submit("cam", b"z", 0.0)
    assert not await pub.broker_ready()
    await until(lambda: pub.in_flight == 1)
    assert broker.starts == 4 and pub.connected
    broker.ack_all()
    await until(lambda: pub.stats.delivered == 1)
    stop.set()
    await task
    await pub.close()


async def test_close_counts_what_could_not_be_delivered() -> None:
    broker = FakeBroker()
    pub = make(broker, max_in_flight=2)
    stop = asyncio.Event()
    task = asyncio.create_task(pub.run(stop))
    for i in range(2):
        pub.submit("cam", f"q{i}".encode(), 0.0)
    await until(lambda: pub.in_flight == 2)
    pub.submit("cam", b"q2", 0.0)
    pub.submit("cam", b"q3", 0.0)
    stop.set()
    await task
    await pub.close(timeout_s=0.2)  # nothing is acked: 2 in flight + 2 pending are lost
    assert pub.stats.dropped_shutdown == 4 and pub.pending == 0
    pub.submit("cam", b"late", 0.0)
    assert pub.stats.dropped_shutdown == 5
