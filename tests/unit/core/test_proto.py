"""Wire contracts: round trips, the field lock, and a breaking change the lock must catch."""

from __future__ import annotations

import copy
import json

import pytest

from lfr.core import wire_lock
from lfr.core.serde import SerdeError, decode, encode, to_json_dict
from lfr.core.timeutil import ts_from_ms
from lfr.v1.adjudication_pb2 import OUTCOME_MATCH, Adjudication
from lfr.v1.alert_pb2 import ALERT_STATUS_PENDING, Alert, SubjectSummary
from lfr.v1.audit_pb2 import AuditEvent
from lfr.v1.common_pb2 import BoundingBox, EncryptedBlob, Point
from lfr.v1.crop_pb2 import FaceCrop
from lfr.v1.dead_letter_pb2 import DeadLetter
from lfr.v1.hit_pb2 import Hit


def _samples() -> list:
    return [
        FaceCrop(
            crop_id="c1",
            deployment_id="d1",
            camera_id="cam",
            track_id="t",
            captured_at=ts_from_ms(1000),
            frame_seq=7,
            bbox=BoundingBox(x=1, y=2, width=30, height=40),
            landmarks=[Point(x=i, y=i) for i in range(5)],
            detector_score=0.99,
            chip=EncryptedBlob(key_id="k", nonce=b"n" * 12, ciphertext=b"x" * 40),
        ),
        Hit(hit_id="h", crop_id="c1", deployment_id="d1", subject_id="s", score=0.8, threshold=0.6, rank=1),
        Alert(
            alert_id="a",
            deployment_id="d1",
            subject=SubjectSummary(subject_id="s", category="wanted"),
            camera_ids=["cam"],
            hit_count=3,
            status=ALERT_STATUS_PENDING,
            revision=2,
        ),
        Adjudication(adjudication_id="j", alert_id="a", outcome=OUTCOME_MATCH, officer="pc1"),
        AuditEvent(seq=1, actor="x", action="a", details={"k": "v"}, prev_hash="0" * 64, hash="f" * 64),
        DeadLetter(stage="embedder", source_topic="t", source_offset=5, reason="bad"),
    ]


@pytest.mark.parametrize("msg", _samples(), ids=lambda m: type(m).__name__)
def test_round_trip(msg) -> None:
    again = decode(type(msg), encode(msg))
    assert again == msg
    assert encode(again) == encode(msg)  # deterministic serialisation


def test_json_mirror_keeps_proto_names() -> None:
    doc = to_json_dict(_samples()[2])
    assert doc["alert_id"] == "a" and doc["camera_ids"] == ["cam"] and doc["status"] == "ALERT_STATUS_PENDING"
    json.dumps(doc)


def test_wrong_protobuf_is_a_clear_error() -> None:
    with pytest.raises(SerdeError, match="not a valid FaceCrop"):
        decode(FaceCrop, b"\xff\xff\xff\xff")
    with pytest.raises(SerdeError, match="empty payload"):
        decode(Hit, None)


def test_lock_matches_the_contracts() -> None:
    locked = json.loads(wire_lock.LOCK.read_text())
    now = wire_lock.current()
    assert wire_lock.violations(locked, now) == []
    assert wire_lock.unlocked(locked, now) == [], (
        "new fields: review, then python -m lfr.core.wire_lock --update"
    )


def test_lock_catches_reuse_and_unreserved_removal() -> None:
    locked = json.loads(wire_lock.LOCK.read_text())
    now = copy.deepcopy(wire_lock.current())
    crop = now["lfr.v1.FaceCrop"]
    removed = crop["fields"].pop("6")  # frame_seq deleted without reserving
    assert any("field 6 (frame_seq) removed" in v for v in wire_lock.violations(locked, now))
    crop["fields"]["6"] = {**removed, "type": "9"}  # number reused with another type
    assert any("field 6 (frame_seq) changed type" in v for v in wire_lock.violations(locked, now))
    del crop["fields"]["6"]
    crop["reserved_numbers"].append(6)
    crop["reserved_names"].append("frame_seq")
    assert wire_lock.violations(locked, now) == []
