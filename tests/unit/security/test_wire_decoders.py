"""Every wire decoder fed hostile bytes: a clear SerdeError / DecryptFailed or a valid message, never a crash.

Property-based (hypothesis): arbitrary bytes, mutated valid records, oversized payloads and version
headers for every message type on every consumed topic; ciphertexts tampered bit by bit, replayed under
another identity or with the nonce of another record.
"""

from __future__ import annotations

import pytest
from google.protobuf.message import Message
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from lfr.core import topics
from lfr.core.crypto import DecryptFailed, crop_aad, open_blob, probe_aad, seal
from lfr.core.serde import (
    MAX_RECORD_BYTES,
    VERSION_HEADER,
    OversizedRecord,
    SerdeError,
    UnknownVersion,
    check_version,
    decode,
    encode,
    topic_version,
)
from lfr.v1.adjudication_pb2 import Adjudication
from lfr.v1.alert_pb2 import Alert
from lfr.v1.audit_pb2 import AuditEvent
from lfr.v1.common_pb2 import EncryptedBlob
from lfr.v1.crop_pb2 import FaceCrop
from lfr.v1.dead_letter_pb2 import DeadLetter
from lfr.v1.hit_pb2 import Hit

MESSAGES: list[type[Message]] = [FaceCrop, Hit, Alert, Adjudication, AuditEvent, DeadLetter, EncryptedBlob]
KEY = bytes(range(32))
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ids = st.text(min_size=1, max_size=40)


def _crop(crop_id: str, camera: str, deployment: str, chip: bytes) -> FaceCrop:
    return FaceCrop(
        crop_id=crop_id,
        deployment_id=deployment,
        camera_id=camera,
        track_id="t",
        frame_seq=7,
        chip=seal("k1", KEY, chip, crop_aad(crop_id, camera, deployment)),
    )


@pytest.mark.parametrize("cls", MESSAGES, ids=lambda c: c.__name__)
@FAST
@given(data=st.binary(max_size=2048))
def test_arbitrary_bytes_decode_or_raise_serde_error(cls: type[Message], data: bytes) -> None:
    try:
        msg = decode(cls, data)
    except SerdeError as exc:
        assert cls.__name__ in str(exc)
        return
    # Whatever parsed must serialise again: nothing half-built is handed to a stage.
    assert isinstance(decode(cls, encode(msg)), cls)


@FAST
@given(crop_id=ids, camera=ids, deployment=ids, chip=st.binary(max_size=512), seq=st.integers(0, 2**64 - 1))
def test_crop_round_trip(crop_id: str, camera: str, deployment: str, chip: bytes, seq: int) -> None:
    crop = _crop(crop_id, camera, deployment, chip)
    crop.frame_seq = seq
    again = decode(FaceCrop, encode(crop))
    assert again == crop
    assert open_blob(KEY, again.chip, crop_aad(crop_id, camera, deployment)) == chip


@FAST
@given(cut=st.integers(min_value=0), flip=st.integers(min_value=0), data=st.data())
def test_truncated_or_bit_flipped_records_never_crash(cut: int, flip: int, data: st.DataObject) -> None:
    raw = encode(_crop("c", "cam", "dep", b"\xff\xd8" + b"x" * 200))
    truncated = raw[: cut % (len(raw) + 1)]
    flipped = bytearray(raw)
    flipped[flip % len(raw)] ^= 1 << data.draw(st.integers(0, 7))
    original = decode(FaceCrop, raw)
    for payload in (truncated, bytes(flipped)):
        try:
            msg = decode(FaceCrop, payload)
        except SerdeError:
            continue
        # Damage to what the chip is bound to (its identity, nonce, ciphertext) must stop it opening; the
        # other fields (track, frame number, key id) are not secret and are checked elsewhere.
        bound = ("crop_id", "camera_id", "deployment_id")
        if msg.chip.ciphertext and (
            any(getattr(msg, f) != getattr(original, f) for f in bound)
            or (msg.chip.nonce, msg.chip.ciphertext) != (original.chip.nonce, original.chip.ciphertext)
        ):
            with pytest.raises(DecryptFailed):
                open_blob(KEY, msg.chip, crop_aad(msg.crop_id, msg.camera_id, msg.deployment_id))


def test_deeply_nested_and_oversized_payloads_are_refused() -> None:
    # Unknown groups (field 127) nested far beyond the parser's recursion limit: refused, no stack overflow.
    nested = b"\xfb\x07" * 10_000 + b"\xfc\x07" * 10_000
    with pytest.raises(SerdeError, match="not a valid FaceCrop"):
        decode(FaceCrop, nested)
    big = encode(FaceCrop(crop_id="x", chip=EncryptedBlob(ciphertext=b"\0" * (MAX_RECORD_BYTES + 1))))
    with pytest.raises(OversizedRecord, match="exceeds"):
        decode(FaceCrop, big)
    assert decode(FaceCrop, big, max_bytes=len(big)).crop_id == "x"


def test_unknown_fields_from_a_newer_v1_producer_are_accepted() -> None:
    """Additive changes within v1 are allowed, so unknown field numbers must not be refused."""
    raw = encode(Hit(hit_id="h", deployment_id="d", subject_id="s")) + b"\xf8\x07\x01"  # field 127 = 1
    assert decode(Hit, raw).hit_id == "h"


@FAST
@given(version=st.binary(max_size=12))
def test_version_header(version: bytes) -> None:
    for topic in (topics.CROPS, topics.HITS, topics.AUDIT):
        assert topic_version(topic) == "v1"
        if version == b"v1":
            check_version(topic, [(VERSION_HEADER, version)])
        else:
            with pytest.raises(UnknownVersion):
                check_version(topic, [(VERSION_HEADER, version)])
        check_version(topic, None)  # unmarked records are of the topic's version
        check_version(topic, [("traceparent", version)])


@FAST
@given(nonce=st.binary(max_size=40), ct=st.binary(max_size=200), aad=st.binary(max_size=60), key_id=ids)
def test_open_blob_refuses_garbage_with_decrypt_failed(
    nonce: bytes, ct: bytes, aad: bytes, key_id: str
) -> None:
    with pytest.raises(DecryptFailed):
        open_blob(KEY, EncryptedBlob(key_id=key_id, nonce=nonce, ciphertext=ct), aad)


@FAST
@given(
    chip=st.binary(min_size=1, max_size=300),
    bit=st.integers(min_value=0),
    part=st.sampled_from(["ct", "nonce"]),
)
def test_any_flipped_bit_is_caught(chip: bytes, bit: int, part: str) -> None:
    aad = crop_aad("c", "cam", "dep")
    blob = seal("k", KEY, chip, aad)
    field = bytearray(blob.ciphertext if part == "ct" else blob.nonce)
    field[(bit // 8) % len(field)] ^= 1 << (bit % 8)
    tampered = EncryptedBlob()
    tampered.CopyFrom(blob)
    if part == "ct":
        tampered.ciphertext = bytes(field)
    else:
        tampered.nonce = bytes(field)
    with pytest.raises(DecryptFailed):
        open_blob(KEY, tampered, aad)


@FAST
@given(a=st.tuples(ids, ids, ids), b=st.tuples(ids, ids, ids))
def test_chip_replayed_under_another_identity_does_not_open(
    a: tuple[str, str, str], b: tuple[str, str, str]
) -> None:
    """A chip moved to another crop, camera or deployment (replay, re-routing) fails authentication."""
    assume(crop_aad(*a) != crop_aad(*b))
    blob = seal("k", KEY, b"chip", crop_aad(*a))
    with pytest.raises(DecryptFailed):
        open_blob(KEY, blob, crop_aad(*b))
    # A probe is bound to its deployment the same way.
    probe = seal("p", KEY, b"probe", probe_aad(a[0], a[2]))
    assume(probe_aad(a[0], a[2]) != probe_aad(b[0], b[2]))
    with pytest.raises(DecryptFailed):
        open_blob(KEY, probe, probe_aad(b[0], b[2]))


def test_ciphertext_spliced_with_another_records_nonce_does_not_open() -> None:
    aad = crop_aad("c", "cam", "dep")
    one, two = seal("k", KEY, b"first", aad), seal("k", KEY, b"second", aad)
    with pytest.raises(DecryptFailed):
        open_blob(KEY, EncryptedBlob(key_id="k", nonce=two.nonce, ciphertext=one.ciphertext), aad)
    with pytest.raises(DecryptFailed):  # truncated tag
        open_blob(KEY, EncryptedBlob(key_id="k", nonce=one.nonce, ciphertext=one.ciphertext[:-1]), aad)
