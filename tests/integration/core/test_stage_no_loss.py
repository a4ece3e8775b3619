"""No record is lost by a Stage across SIGTERM, SIGKILL and a group losing a member mid-stream.

Counts inputs against processed outputs per partition on the real embedded broker (whose group protocol
differs from Kafka's: see toolchain.md), and measures how long the surviving group takes to process
again. Duplicates are allowed (at-least-once); gaps are not.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from lfr.core.bus import ensure_topics, make_producer
from lfr.core.config import Settings
from lfr.core.topics import TopicSpec

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[3]
PARTITIONS = 6
N = 1800
SLOW = "0.3"  # seconds per 20-record batch: about 27 s for the whole topic, so kills land mid-stream


async def _setup(settings: Settings) -> tuple[str, str]:
    tag = uuid.uuid4().hex[:8]
    src, dst = f"test.stage.in.{tag}", f"test.stage.out.{tag}"
    await ensure_topics(
        settings, [TopicSpec(src, PARTITIONS, "k", 3_600_000), TopicSpec(dst, PARTITIONS, "k", 3_600_000)]
    )
    producer = make_producer(settings, "test")
    await producer.start()
    try:
        futs = [await producer.send(src, f"v{i}".encode(), key=f"k{i}".encode()) for i in range(N)]
        await asyncio.gather(*futs)
    finally:
        await producer.stop()
    return src, dst


async def _read(settings: Settings, topic: str, idle_s: float = 1.5) -> list[str]:
    c = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)
    await c.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        c.assign(tps)
        await c.seek_to_beginning(*tps)
        out: list[str] = []
        while True:
            batch = await c.getmany(timeout_ms=int(idle_s * 1000), max_records=5000)
            got = [r.value.decode() for recs in batch.values() for r in recs]
            if not got:
                return out
            out.extend(got)
    finally:
        await c.stop()


async def _input_coords(settings: Settings, topic: str) -> set[tuple[int, int]]:
    c = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)
    await c.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        c.assign(tps)
        await c.seek_to_beginning(*tps)
        coords: set[tuple[int, int]] = set()
        while True:
            batch = await c.getmany(timeout_ms=1500, max_records=5000)
            if not batch:
                return coords
            for tp, recs in batch.items():
                coords.update((tp.partition, r.offset) for r in recs)
    finally:
        await c.stop()


def _worker(settings: Settings, src: str, dst: str, group: str, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.integration.core.stage_copy_worker",
            settings.kafka_bootstrap,
            src,
            dst,
            group,
            *extra,
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


class _Tail:
    """Follows the output topic incrementally, so progress checks stay cheap as it grows."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self.settings, self.topic = settings, topic
        self.values: list[str] = []
        self.distinct: set[str] = set()
        self.first_seen: dict[str, float] = {}  # "partition:offset" -> when its first output arrived
        self._c: AIOKafkaConsumer | None = None

    async def __aenter__(self) -> _Tail:
        self._c = AIOKafkaConsumer(bootstrap_servers=self.settings.kafka_bootstrap, enable_auto_commit=False)
        await self._c.start()
        tps = [TopicPartition(self.topic, p) for p in range(PARTITIONS)]
        self._c.assign(tps)
        await self._c.seek_to_beginning(*tps)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._c is not None
        await self._c.stop()

    async def wait_for(self, at_least: int, timeout_s: float) -> float:
        assert self._c is not None
        t0 = time.monotonic()
        while len(self.distinct) < at_least:
            if time.monotonic() - t0 > timeout_s:
                raise AssertionError(
                    f"{len(self.distinct)} < {at_least} records processed within {timeout_s}s"
                )
            batch = await self._c.getmany(timeout_ms=200, max_records=5000)
            for recs in batch.values():
                for r in recs:
                    v = r.value.decode()
                    self.values.append(v)
                    coord = v.rsplit(":", 1)[0]
                    self.distinct.add(coord)
                    self.first_seen.setdefault(coord, time.monotonic())
        return time.monotonic() - t0

    def resume_delays(self, since: float) -> dict[int, float]:
        """Per partition with work left at ``since``: seconds until its first new record was processed."""
        firsts: dict[int, float] = {}
        for coord, at in self.first_seen.items():
            if at >= since:
                p = int(coord.split(":")[0])
                firsts[p] = min(firsts.get(p, at), at)
        return {p: round(at - since, 1) for p, at in sorted(firsts.items())}


def _assert_no_loss(inputs: set[tuple[int, int]], outputs: list[str]) -> Counter[int]:
    seen = {(int(p), int(o)) for p, o, _ in (v.split(":") for v in outputs)}
    missing = inputs - seen
    per_partition = Counter(p for p, _ in missing)
    assert not missing, f"lost {len(missing)} records, per partition: {dict(per_partition)}"
    return Counter(p for p, _ in seen)


@pytest.mark.long
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
async def test_restart_mid_stream_loses_nothing(stack_settings: Settings, sig: signal.Signals) -> None:
    src, dst = await _setup(stack_settings)
    group = f"g-{uuid.uuid4().hex[:6]}"
    w = _worker(stack_settings, src, dst, group, "--per-batch-sleep", SLOW)
    async with _Tail(stack_settings, dst) as tail:
        try:
            await tail.wait_for(300, 60)
            w.send_signal(sig)
            w.wait(timeout=30)
        finally:
            w.kill()
        restarted_at = time.monotonic()
        w2 = _worker(stack_settings, src, dst, group, "--per-batch-sleep", "0.01")
        try:
            await tail.wait_for(N, 90)
            resumed_in = time.monotonic() - restarted_at
        finally:
            w2.send_signal(signal.SIGTERM)
            w2.wait(timeout=30)
        delays = tail.resume_delays(restarted_at)
    outputs = await _read(stack_settings, dst)
    per_partition = _assert_no_loss(await _input_coords(stack_settings, src), outputs)
    assert len(per_partition) == PARTITIONS
    by_pid = Counter(v.rsplit(":", 1)[1] for v in outputs)
    assert by_pid[str(w.pid)] < N, "the first worker finished before it was stopped: the test proved nothing"
    assert by_pid[str(w2.pid)] > 0
    print(f"{sig.name}: every partition processing again after {delays} s; all {N} done {resumed_in:.1f}s")
    assert delays and max(delays.values()) < 30, delays


@pytest.mark.long
async def test_group_survives_losing_a_member_that_never_committed(stack_settings: Settings) -> None:
    src, dst = await _setup(stack_settings)
    group = f"g-{uuid.uuid4().hex[:6]}"
    survivor = _worker(stack_settings, src, dst, group, "--per-batch-sleep", SLOW)
    doomed = None
    tail = _Tail(stack_settings, dst)
    await tail.__aenter__()
    try:
        await tail.wait_for(100, 60)
        # The second member joins, takes half the partitions, and dies holding its first batch uncommitted.
        doomed = _worker(stack_settings, src, dst, group, "--delay-first", "120")
        await asyncio.sleep(8)
        assert survivor.poll() is None
        doomed.kill()
        doomed.wait(timeout=10)
        killed_at = time.monotonic()
        await tail.wait_for(N, 120)
        took = time.monotonic() - killed_at
        delays = tail.resume_delays(killed_at)
    finally:
        await tail.__aexit__()
        survivor.send_signal(signal.SIGTERM)
        survivor.wait(timeout=30)
        if doomed is not None and doomed.poll() is None:
            doomed.kill()
    outputs = await _read(stack_settings, dst)
    _assert_no_loss(await _input_coords(stack_settings, src), outputs)
    assert len({v.rsplit(":", 1)[0] for v in outputs if v.endswith(f":{survivor.pid}")}) == N
    doomed_pid = str(doomed.pid)
    assert not any(v.endswith(":" + doomed_pid) for v in outputs), "the doomed worker was never to commit"
    print(f"member lost: partitions processing again after {delays} s; all done {took:.1f}s after the kill")
    assert len(delays) == PARTITIONS and max(delays.values()) < 30, delays
