"""Hostile records on the real broker, read by the real stages: every one becomes a DeadLetter with its
reason (or, for a crop whose key is gone, an expired count), nothing of it is copied, and the good record
behind them is still processed. Real Tansu, Redis, key store, Milvus and the built face model."""

from __future__ import annotations

import asyncio
import struct
import uuid
from collections.abc import Callable, Iterable

import cv2
import numpy as np
import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from alerting_support import ALERT_TOPICS, AlertTail, HitMaker, alerting_running, settings_with

from lfr.core import stats, topics
from lfr.core.bus import make_consumer
from lfr.core.config import Settings
from lfr.core.crypto import CropKeyring, crop_aad
from lfr.core.redis_client import make_redis
from lfr.core.serde import MAX_RECORD_BYTES, VERSION_HEADER, decode, encode
from lfr.core.stage import Stage
from lfr.embedder.service import build_handler
from lfr.v1.common_pb2 import EncryptedBlob
from lfr.v1.crop_pb2 import FaceCrop
from lfr.v1.dead_letter_pb2 import DeadLetter
from lfr.v1.hit_pb2 import Hit
from lfr.vision import load_embedder
from lfr.watchlist.store import WatchlistStore

pytestmark = pytest.mark.integration

Sent = tuple[int, int]  # partition, offset


async def _raw_producer(settings: Settings) -> AIOKafkaProducer:
    """A producer that allows records far above the readers' limit, as a hostile one would."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, max_request_size=2 * MAX_RECORD_BYTES, acks="all"
    )
    await producer.start()
    return producer


async def _send(
    producer: AIOKafkaProducer,
    topic: str,
    value: bytes,
    key: bytes,
    headers: Iterable[tuple[str, bytes]] = (),
) -> Sent:
    md = await producer.send_and_wait(topic, value, key=key, headers=list(headers))
    return md.partition, md.offset


async def _skip_to_end(settings: Settings, topic: str, group_id: str) -> None:
    """Commit the test's group at the topic's end: it reads only what this test writes (and a little more
    where the embedded broker reports the end early)."""
    consumer = make_consumer(settings, group_id=group_id, client_suffix="test-skip")
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        await consumer.commit({tp: await consumer.position(tp) for tp in tps})
    finally:
        await consumer.stop()


async def _dead_letters(
    settings: Settings, topic: str, wanted: set[Sent], timeout_s: float = 60
) -> dict[Sent, DeadLetter]:
    """The dead letters of the records at ``wanted`` (partition, offset) of ``topic``."""
    async with AlertTail(settings, topics.DEADLETTER) as tail:

        def found() -> dict[Sent, DeadLetter]:
            out = {}
            for _, value in tail.records:
                d = decode(DeadLetter, value)
                if d.source_topic == topic and (d.source_partition, d.source_offset) in wanted:
                    out[(d.source_partition, d.source_offset)] = d
            return out

        await tail.wait_until(lambda: len(found()) >= len(wanted), timeout_s, f"dead letters of {topic}")
        return found()


def _jpeg_claiming(width: int, height: int) -> bytes:
    buf = bytearray(cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))[1].tobytes())
    i = buf.index(b"\xff\xc0")
    buf[i + 5 : i + 9] = struct.pack(">HH", height, width)
    return bytes(buf)


async def _until(check: Callable[[], object], timeout_s: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not await check():  # type: ignore[misc]
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(0.2)


async def test_hostile_crops_are_dead_lettered_and_the_embedder_goes_on(
    settings_for,
    models_dir,
    live_deployment,  # type: ignore[no-untyped-def]
) -> None:
    settings: Settings = settings_for(models={"dir": models_dir})
    tag = uuid.uuid4().hex[:8]
    dep = await live_deployment(settings, (f"wl-hostile-{tag}",))
    camera = f"cam-hostile-{tag}"
    group = f"emb-hostile-{tag}"
    await _skip_to_end(settings, topics.CROPS, group)

    embedder = await asyncio.to_thread(load_embedder, settings)
    size = embedder.chip_size
    face = cv2.imencode(".jpg", np.random.default_rng(7).integers(0, 255, (size, size, 3), np.uint8))[
        1
    ].tobytes()
    keyring = CropKeyring(settings)

    async def crop(crop_id: str, chip: bytes, deployment: str = dep) -> FaceCrop:
        blob = await keyring.encrypt(chip, crop_aad(crop_id, camera, deployment))
        return FaceCrop(crop_id=crop_id, deployment_id=deployment, camera_id=camera, track_id="t", chip=blob)

    good = await crop(f"good-{tag}", face)
    tampered = await crop(f"tampered-{tag}", face)
    tampered.chip.ciphertext = bytes([tampered.chip.ciphertext[0] ^ 1]) + tampered.chip.ciphertext[1:]
    replayed = FaceCrop()
    replayed.CopyFrom(good)
    replayed.crop_id = f"replayed-{tag}"  # the good chip presented as another crop
    gone = FaceCrop()
    gone.CopyFrom(good)
    gone.crop_id = f"gone-{tag}"
    gone.chip.CopyFrom(EncryptedBlob(key_id=f"expired-{tag}", nonce=b"\0" * 12, ciphertext=b"\0" * 32))
    key = camera.encode()
    producer = await _raw_producer(settings)
    try:
        expect = {
            await _send(producer, topics.CROPS, b"\x0a\xff\xff\xff\xff\x0f garbage", key): "bad_payload",
            await _send(producer, topics.CROPS, encode(FaceCrop(crop_id="x")), key): "bad_payload",
            await _send(producer, topics.CROPS, b"\0" * (MAX_RECORD_BYTES + 1), key): "oversized",
            await _send(
                producer, topics.CROPS, encode(good), key, [(VERSION_HEADER, b"v2")]
            ): "unknown_version",
            await _send(
                producer, topics.CROPS, encode(await crop(f"rogue-{tag}", face, f"dep-unknown-{tag}")), key
            ): "deployment_not_live",
            await _send(producer, topics.CROPS, encode(tampered), key): "decrypt_failed",
            await _send(producer, topics.CROPS, encode(replayed), key): "decrypt_failed",
            await _send(
                producer, topics.CROPS, encode(await crop(f"bomb-{tag}", _jpeg_claiming(60_000, 60_000))), key
            ): "bad_chip",
            await _send(
                producer, topics.CROPS, encode(await crop(f"text-{tag}", b"<html>not a face</html>")), key
            ): "bad_chip",
            await _send(
                producer, topics.CROPS, encode(await crop(f"cut-{tag}", face[: len(face) // 2])), key
            ): "bad_chip",
        }
        await _send(producer, topics.CROPS, encode(gone), key)
        await _send(producer, topics.CROPS, encode(good), key)
        await _send(producer, topics.CROPS, encode(good), key)  # a replay of the whole record
    finally:
        await producer.stop()

    redis = make_redis(settings)
    store = WatchlistStore(settings, embedder.card)
    await asyncio.to_thread(store.ensure_collection)
    stage = Stage(settings, "embedder", topics.CROPS, group, build_handler(settings, redis, embedder, store))
    runner = asyncio.create_task(stage.run())
    try:

        async def decided() -> bool:
            t = await stats.totals(redis, settings, dep)
            return t.get(stats.FACES_ANALYSED, 0) >= 1 and t.get(stats.CROPS_EXPIRED, 0) >= 1

        await _until(decided, 90, "the good crop analysed and the keyless one counted expired")
        letters = await _dead_letters(settings, topics.CROPS, set(expect))
        assert not runner.done(), "the embedder stage is still running"
        totals = await stats.totals(redis, settings, dep)
    finally:
        stage.stop()
        await runner
        store.close()
        await redis.aclose()
        await keyring.aclose()

    assert {k: d.reason for k, d in letters.items()} == expect
    assert all(d.payload == b"" for d in letters.values()), "no crop bytes are copied to the dead letters"
    assert "60000x60000" in next(d.error_type for k, d in letters.items() if expect[k] == "bad_chip")
    # The replayed good record is counted once; the crop with no key is deleted by design, not an error.
    assert totals.get(stats.FACES_ANALYSED) == 1 and totals.get(stats.CROPS_EXPIRED) == 1


async def test_hostile_hits_are_dead_lettered_and_the_alert_is_still_raised(stack_settings: Settings) -> None:
    settings = settings_with(stack_settings)
    tag = uuid.uuid4().hex[:8]
    dep = f"dep-hostile-{tag}"
    maker = HitMaker(settings)
    good: Hit = await maker.hit(dep, f"subj-{tag}", f"crop-{tag}")
    async with alerting_running(settings), AlertTail(settings, ALERT_TOPICS) as tail:
        producer = await _raw_producer(settings)
        key = dep.encode()
        try:
            expect = {
                await _send(producer, topics.HITS, b"\xff\xff\xff\xff not a hit", key): "undecodable",
                await _send(
                    producer, topics.HITS, encode(Hit(hit_id="h", deployment_id=dep)), key
                ): "undecodable",
                await _send(producer, topics.HITS, b"\0" * (MAX_RECORD_BYTES + 1), key): "oversized",
                await _send(
                    producer, topics.HITS, encode(good), key, [(VERSION_HEADER, b"v9")]
                ): "unknown_version",
            }
            await _send(producer, topics.HITS, encode(good), key, [(VERSION_HEADER, b"v1")])
        finally:
            await producer.stop()
        await tail.wait_until(lambda: len(tail.alerts({dep})) >= 1, 30, "the good hit's alert")
        letters = await _dead_letters(settings, topics.HITS, set(expect))
    assert {k: d.reason for k, d in letters.items()} == expect
    assert all(d.payload == b"" for d in letters.values())
    [(_, alert)] = tail.alerts({dep})
    assert alert.hit_count == 1


async def test_a_poison_record_is_dead_lettered_and_committed_past(stack_settings: Settings) -> None:
    """A record that makes the handler raise (a bug hit by one hostile input) no longer stops the worker:
    it is dead-lettered with the error type, its neighbours are processed, and the group commits past it,
    so no restarted worker meets it again."""
    settings = settings_with(stack_settings)
    tag = uuid.uuid4().hex[:8]
    group = f"poison-{tag}"
    poison = f"poison-{tag}".encode()
    await _skip_to_end(settings, topics.CROPS, group)
    seen: list[bytes] = []

    async def handler(records):  # type: ignore[no-untyped-def]
        for r in records:
            if r.value == poison:
                raise IndexError("a handler bug this record triggers")
        seen.extend(r.value for r in records if r.value and r.value.startswith(b"ok-"))
        return []

    producer = await _raw_producer(settings)
    key = f"cam-{tag}".encode()  # one key: one partition, in order
    try:
        first = await _send(producer, topics.CROPS, b"ok-" + tag.encode() + b"-1", key)
        bad = await _send(producer, topics.CROPS, poison, key)
        last = await _send(producer, topics.CROPS, b"ok-" + tag.encode() + b"-2", key)
    finally:
        await producer.stop()
    assert first[0] == bad[0] == last[0]
    stage = Stage(settings, f"poison-{tag}", topics.CROPS, group, handler)
    runner = asyncio.create_task(stage.run())
    try:
        letters = await _dead_letters(settings, topics.CROPS, {bad})
        await _until(_async(lambda: len([v for v in seen if tag.encode() in v]) >= 2), 30, "both neighbours")
        assert not runner.done(), "the stage survived the poison record"
    finally:
        stage.stop()
        await runner
    assert letters[bad].reason == "handler_error" and letters[bad].error_type.startswith("IndexError")
    consumer = make_consumer(settings, group_id=group, client_suffix="test-committed")
    await consumer.start()
    try:
        committed = await consumer.committed(TopicPartition(topics.CROPS, bad[0]))
    finally:
        await consumer.stop()
    assert committed is not None and committed > bad[1], "the group committed past the poison record"


def _async(check: Callable[[], bool]) -> Callable[[], object]:
    async def run() -> bool:
        return check()

    return run
