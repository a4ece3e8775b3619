"""The consumer stage and the embedder's handler under hostile records: each one is dead-lettered with its
reason and the rest of the batch goes on; a fault that is not in the records is still raised."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import pytest
from aiokafka import ConsumerRecord

from lfr.core import topics
from lfr.core.config import Settings, load_settings
from lfr.core.crypto import DecryptFailed, KeyExpired, crop_aad, open_blob, seal
from lfr.core.serde import VERSION_HEADER, decode, encode
from lfr.core.stage import Output, Stage
from lfr.embedder.handler import EmbedHandler
from lfr.v1.crop_pb2 import FaceCrop
from lfr.v1.dead_letter_pb2 import DeadLetter
from lfr.v1.hit_pb2 import Hit
from lfr.watchlist.deployments import LiveDeployment
from lfr.watchlist.store import Candidate

KEY = b"k" * 32
SIZE = 150


def _rec(
    value: bytes | None, offset: int = 0, headers: list[tuple[str, bytes]] | None = None
) -> ConsumerRecord:
    size = len(value) if value else 0
    return ConsumerRecord(topics.CROPS, 0, offset, 0, 0, b"cam", value, None, 0, size, headers or [])


def _dead(outputs: list[Output]) -> list[DeadLetter]:
    return [decode(DeadLetter, o.value) for o in outputs if o.topic == topics.DEADLETTER]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(data_dir=str(tmp_path))


class Echo:
    """Outputs one record per input; raises on payloads it was told are poison."""

    def __init__(self, poison: set[bytes], error: type[Exception] = IndexError) -> None:
        self.poison = poison
        self.error = error
        self.calls = 0

    async def __call__(self, records: Sequence[ConsumerRecord]) -> list[Output]:
        self.calls += 1
        for r in records:
            if r.value in self.poison:
                raise self.error("handler bug on this record")
        return [Output("out.v1", r.value or b"") for r in records]


async def test_oversized_and_other_version_records_are_refused_before_the_handler(settings: Settings) -> None:
    handler = Echo(set())
    stage = Stage(settings, "t", topics.CROPS, "g", handler, max_record_bytes=100)
    outputs = await stage._handle(
        [
            _rec(b"a" * 101, 0),
            _rec(b"v2", 1, [(VERSION_HEADER, b"v2")]),
            _rec(b"ok", 2, [(VERSION_HEADER, b"v1")]),
            _rec(b"plain", 3),
        ]
    )
    dead = _dead(outputs)
    assert [(d.reason, d.source_offset) for d in dead] == [("oversized", 0), ("unknown_version", 1)]
    assert all(d.payload == b"" for d in dead), "refused payloads are not copied to the dead-letter topic"
    assert [o.value for o in outputs if o.topic == "out.v1"] == [b"ok", b"plain"]


async def test_a_poison_record_is_isolated_and_the_batch_goes_on(settings: Settings) -> None:
    handler = Echo({b"poison"})
    stage = Stage(settings, "t", topics.CROPS, "g", handler)
    outputs = await stage._handle([_rec(b"one", 0), _rec(b"poison", 1), _rec(b"two", 2)])
    dead = _dead(outputs)
    assert [(d.reason, d.source_offset) for d in dead] == [("handler_error", 1)]
    assert dead[0].error_type.startswith("IndexError")
    assert sorted(o.value for o in outputs if o.topic == "out.v1") == [b"one", b"two"]
    single = await stage._handle([_rec(b"poison", 5)])
    assert [d.reason for d in _dead(single)] == ["handler_error"]


async def test_a_fault_every_record_hits_is_raised_not_dead_lettered(settings: Settings) -> None:
    stage = Stage(settings, "t", topics.CROPS, "g", Echo({b"a", b"b"}))
    with pytest.raises(IndexError):
        await stage._handle([_rec(b"a", 0), _rec(b"b", 1)])
    # Transient failures (Milvus, Redis, broker away) are retried whole by the stage, never dead-lettered.
    stage = Stage(settings, "t", topics.CROPS, "g", Echo({b"a"}, ConnectionError))
    with pytest.raises(ConnectionError):
        await stage._handle([_rec(b"a", 0), _rec(b"b", 1)])


# ---- the embedder's handler with hostile chips -------------------------------------------------------


class Keyring:
    async def decrypt(self, blob, aad):  # type: ignore[no-untyped-def]
        if blob.key_id == "gone":
            raise KeyExpired(blob.key_id)
        return open_blob(KEY, blob, aad)


class Probes:
    async def seal(self, deployment_id: str, plaintext: bytes, aad: bytes):  # type: ignore[no-untyped-def]
        return seal("p", KEY, plaintext, aad)


class Rule:
    def is_match(self, raw: float, threshold: float | None = None) -> bool:
        return raw < 0.5

    def to_score(self, raw: float) -> float:
        return 1 - raw


class Embedder:
    card = Rule()
    model_id = "fake:1"
    chip_size = SIZE

    def embed(self, chips: Sequence[np.ndarray]) -> np.ndarray:
        return np.zeros((len(chips), 1), np.float32)


class Matcher:
    async def search(self, vectors, watchlist_ids, top_k):  # type: ignore[no-untyped-def]
        return [[Candidate("s", "wl", "wanted", 0.1, 0.9)] for _ in vectors]

    async def confirm(self, candidates, watchlist_ids):  # type: ignore[no-untyped-def]
        return list(candidates)


class Deployments:
    async def live(self, deployment_id: str) -> LiveDeployment | None:
        return LiveDeployment("dep", ("wl",), 0.5, "fake:1") if deployment_id == "dep" else None


async def _no_counts(deployment_id: str, per_crop: dict[str, dict[str, int]]) -> None:
    return None


def _handler() -> EmbedHandler:
    return EmbedHandler(3, Keyring(), Probes(), Embedder(), Matcher(), Deployments(), _no_counts)  # type: ignore[arg-type]


def _png_header(w: int, h: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk))


def _jpeg_bomb(w: int, h: int) -> bytes:
    """A real tiny JPEG whose frame header is rewritten to claim w x h pixels."""
    buf = bytearray(cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))[1].tobytes())
    i = buf.index(b"\xff\xc0")
    buf[i + 5 : i + 9] = struct.pack(">HH", h, w)
    return bytes(buf)


def _crop_with(crop_id: str, chip: bytes, key_id: str = "k1", deployment: str = "dep") -> bytes:
    return encode(
        FaceCrop(
            crop_id=crop_id,
            deployment_id=deployment,
            camera_id="cam",
            chip=seal(key_id, KEY, chip, crop_aad(crop_id, "cam", deployment)),
        )
    )


async def test_hostile_chips_are_dead_lettered_and_a_good_crop_still_matches() -> None:
    good = cv2.imencode(".jpg", np.full((SIZE, SIZE, 3), 128, np.uint8))[1].tobytes()
    swapped = decode(FaceCrop, _crop_with("a", good))
    swapped.crop_id = "b"  # the chip of crop a replayed as crop b
    records = [
        _rec(_crop_with("bomb", _jpeg_bomb(60_000, 60_000)), 0),
        _rec(_crop_with("png-bomb", _png_header(100_000, 100_000)), 1),
        _rec(_crop_with("text", b"GET / HTTP/1.1\r\n\r\n"), 2),
        _rec(_crop_with("truncated", good[: len(good) // 3]), 3),
        _rec(_crop_with("empty", b""), 4),
        _rec(encode(swapped), 5),
        _rec(_crop_with("rogue", good, deployment="unknown-deployment"), 6),
        _rec(b"\x0a\xff\xff\xff\xff\x0f", 7),
        _rec(None, 8),
        _rec(_crop_with("expired", good, key_id="gone"), 9),
        _rec(_crop_with("good", good), 10),
    ]
    outputs = await _handler()(records)
    dead = {d.source_offset: d.reason for d in _dead(outputs)}
    assert dead == {
        0: "bad_chip",
        1: "bad_chip",
        2: "bad_chip",
        3: "bad_chip",
        4: "bad_chip",
        5: "decrypt_failed",
        6: "deployment_not_live",
        7: "bad_payload",
        8: "bad_payload",
    }, "an expired key is deletion by design: counted, not dead-lettered"
    assert "60000x60000" in next(d.error_type for d in _dead(outputs) if d.source_offset == 0)
    hits = [decode(Hit, o.value) for o in outputs if o.topic == topics.HITS]
    assert [h.crop_id for h in hits] == ["good"]


def test_decrypt_failed_names_no_plaintext() -> None:
    blob = seal("k", KEY, b"secret chip bytes", crop_aad("c", "cam", "dep"))
    with pytest.raises(DecryptFailed) as info:
        open_blob(KEY, blob, crop_aad("c", "cam", "other"))
    assert b"secret" not in str(info.value).encode()
