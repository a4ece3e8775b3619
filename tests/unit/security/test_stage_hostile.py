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
from lfr.core.crypto import DecryptFailed, crop_aad, open_blob, seal
from lfr.core.serde import VERSION_HEADER, decode, encode
from lfr.core.stage import Output, Stage
from lfr.v1.dead_letter_pb2 import DeadLetter
from lfr.v1.hit_pb2 import Hit

from ..embedder_fakes import KEY, SIZE, crop_record, sealed_crop, wired_handler


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
            crop_record(b"a" * 101, 0),
            crop_record(b"v2", 1, [(VERSION_HEADER, b"v2")]),
            crop_record(b"ok", 2, [(VERSION_HEADER, b"v1")]),
            crop_record(b"plain", 3),
        ]
    )
    dead = _dead(outputs)
    assert [(d.reason, d.source_offset) for d in dead] == [("oversized", 0), ("unknown_version", 1)]
    assert all(d.payload == b"" for d in dead), "refused payloads are not copied to the dead-letter topic"
    assert [o.value for o in outputs if o.topic == "out.v1"] == [b"ok", b"plain"]


async def test_a_poison_record_is_isolated_and_the_batch_goes_on(settings: Settings) -> None:
    handler = Echo({b"poison"})
    stage = Stage(settings, "t", topics.CROPS, "g", handler)
    outputs = await stage._handle([crop_record(b"one", 0), crop_record(b"poison", 1), crop_record(b"two", 2)])
    dead = _dead(outputs)
    assert [(d.reason, d.source_offset) for d in dead] == [("handler_error", 1)]
    assert dead[0].error_type.startswith("IndexError")
    assert sorted(o.value for o in outputs if o.topic == "out.v1") == [b"one", b"two"]
    single = await stage._handle([crop_record(b"poison", 5)])
    assert [d.reason for d in _dead(single)] == ["handler_error"]


async def test_a_fault_every_record_hits_is_raised_not_dead_lettered(settings: Settings) -> None:
    stage = Stage(settings, "t", topics.CROPS, "g", Echo({b"a", b"b"}))
    with pytest.raises(IndexError):
        await stage._handle([crop_record(b"a", 0), crop_record(b"b", 1)])
    # Transient failures (Milvus, Redis, broker away) are retried whole by the stage, never dead-lettered.
    stage = Stage(settings, "t", topics.CROPS, "g", Echo({b"a"}, ConnectionError))
    with pytest.raises(ConnectionError):
        await stage._handle([crop_record(b"a", 0), crop_record(b"b", 1)])


# ---- the embedder's handler with hostile chips -------------------------------------------------------


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


async def test_hostile_chips_are_dead_lettered_and_a_good_crop_still_matches() -> None:
    good = cv2.imencode(".jpg", np.full((SIZE, SIZE, 3), 128, np.uint8))[1].tobytes()
    swapped = sealed_crop("a", good)
    swapped.crop_id = "b"  # the chip of crop a replayed as crop b
    records = [
        crop_record(sealed_crop("bomb", _jpeg_bomb(60_000, 60_000)), 0),
        crop_record(sealed_crop("png-bomb", _png_header(100_000, 100_000)), 1),
        crop_record(sealed_crop("text", b"GET / HTTP/1.1\r\n\r\n"), 2),
        crop_record(sealed_crop("truncated", good[: len(good) // 3]), 3),
        crop_record(sealed_crop("empty", b""), 4),
        crop_record(encode(swapped), 5),
        crop_record(sealed_crop("rogue", good, deployment="unknown-deployment"), 6),
        crop_record(b"\x0a\xff\xff\xff\xff\x0f", 7),
        crop_record(None, 8),
        crop_record(sealed_crop("expired", good, key_id="gone"), 9),
        crop_record(sealed_crop("good", good), 10),
    ]
    wired = wired_handler(threshold=0.5)  # the good chip (brightness 128) lies 0.3 from the enrolled face
    wired.keyring.expired.add("gone")
    outputs = await wired.handler(records)
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
