"""EmbedHandler decisions with a fake model and store: hit, discard, expired, refused, bad input."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from lfr.core import stats, topics
from lfr.core.crypto import crop_aad, open_blob, probe_aad, seal
from lfr.core.ids import hit_id
from lfr.core.serde import decode
from lfr.embedder.handler import HITS_WITHDRAWN
from lfr.embedder.track_fusion import TrackFusion
from lfr.v1.crop_pb2 import SEND_REASON_BEST_SHOT, SEND_REASON_UNPASSED_LIVE, FaceCrop
from lfr.v1.dead_letter_pb2 import DeadLetter
from lfr.v1.hit_pb2 import Hit

from ..embedder_fakes import KEY, PROBE_KEY, SIZE, Wired, chip_jpeg, crop_record, sealed_crop, wired_handler


def _crop(crop_id: str, brightness: int, deployment: str = "dep", key_id: str = "key1") -> FaceCrop:
    return sealed_crop(crop_id, chip_jpeg(brightness), deployment=deployment, key_id=key_id)


@pytest.fixture
def w() -> Wired:
    return wired_handler()


async def test_match_becomes_hit_and_non_match_leaves_nothing(w: Wired) -> None:
    outputs = await w.handler([crop_record(_crop("match", 204)), crop_record(_crop("stranger", 40), 1)])
    assert [o.topic for o in outputs] == [topics.HITS]
    hit = decode(Hit, outputs[0].value)
    assert hit.hit_id == hit_id("match", "subj-1") and hit.rank == 1 and hit.crop_id == "match"
    assert hit.threshold == pytest.approx(0.95) and hit.score > hit.threshold  # both in score units
    assert outputs[0].key == b"dep"
    assert hit.probe.key_id == "alert-dep", "probes are sealed under their deployment's key"
    probe = open_blob(PROBE_KEY, hit.probe, probe_aad("match", "dep"))
    decoded = cv2.imdecode(np.frombuffer(probe, np.uint8), cv2.IMREAD_COLOR)
    assert decoded is not None and decoded.shape == (SIZE, SIZE, 3)
    assert not any(b"stranger" in o.value for o in outputs), "nothing about the non-match is emitted"
    c = w.sink.counts["dep"]
    assert c[stats.FACES_ANALYSED] == 2 and c[stats.HITS] == 1 and c[stats.CROPS_DISCARDED] == 1
    assert w.matcher.calls == [(2, ("wl-1",))], "one batched search, restricted to the deployment"
    # Counts go out per crop id, so the sink can count each crop once however often it is redelivered.
    assert w.sink.per_crop == {
        "match": {stats.FACES_ANALYSED: 1, stats.HITS: 1},
        "stranger": {stats.FACES_ANALYSED: 1, stats.CROPS_DISCARDED: 1},
    }


async def test_hit_on_a_subject_delisted_after_the_search_read_is_withdrawn(w: Wired) -> None:
    """The search may read a moment behind the latest writes; only a confirmed subject raises a hit."""
    w.matcher.delisted.add("subj-1")
    before = HITS_WITHDRAWN._value.get()
    outputs = await w.handler([crop_record(_crop("match", 204)), crop_record(_crop("stranger", 40), 1)])
    assert outputs == []
    assert w.matcher.confirmed == [["subj-1"]], "only threshold-clearing candidates are confirmed"
    assert HITS_WITHDRAWN._value.get() == before + 1
    c = w.sink.counts["dep"]
    assert c[stats.FACES_ANALYSED] == 2 and c[stats.CROPS_DISCARDED] == 2 and stats.HITS not in c


async def test_no_confirmation_call_when_nothing_clears_the_threshold(w: Wired) -> None:
    assert await w.handler([crop_record(_crop("stranger", 40))]) == []
    assert w.matcher.confirmed == []


async def test_redelivery_gives_the_same_hit_id(w: Wired) -> None:
    crop = _crop("again", 204)
    first = await w.handler([crop_record(crop)])
    second = await w.handler([crop_record(crop)])
    assert decode(Hit, first[0].value).hit_id == decode(Hit, second[0].value).hit_id


async def test_expired_key_is_counted_not_dead_lettered(w: Wired) -> None:
    w.keyring.expired.add("old")
    outputs = await w.handler([crop_record(_crop("late", 204, key_id="old"))])
    assert outputs == []
    assert w.sink.counts["dep"] == {stats.CROPS_EXPIRED: 1}


async def test_unknown_deployment_is_refused_unread(w: Wired) -> None:
    outputs = await w.handler([crop_record(_crop("x", 204, deployment="rogue"))])
    assert len(outputs) == 1 and outputs[0].topic == topics.DEADLETTER
    dl = decode(DeadLetter, outputs[0].value)
    assert dl.reason == "deployment_not_live" and dl.payload == b""
    assert w.sink.counts["rogue"] == {stats.CROPS_REFUSED: 1}


async def test_bad_input_goes_to_dead_letter_and_batch_goes_on(w: Wired) -> None:
    tampered = _crop("t", 204)
    tampered.chip.ciphertext = b"\x00" + tampered.chip.ciphertext[1:]
    wrong_size = FaceCrop(
        crop_id="w",
        deployment_id="dep",
        camera_id="cam",
        chip=seal(
            "key1",
            KEY,
            cv2.imencode(".jpg", np.zeros((10, 10, 3), np.uint8))[1].tobytes(),
            crop_aad("w", "cam", "dep"),
        ),
    )
    outputs = await w.handler(
        [
            crop_record(b"\xff\xfe garbage"),
            crop_record(FaceCrop(crop_id="no-dep")),
            crop_record(tampered),
            crop_record(wrong_size),
            crop_record(_crop("good", 204)),
        ]
    )
    reasons = [decode(DeadLetter, o.value).reason for o in outputs if o.topic == topics.DEADLETTER]
    assert reasons == ["bad_payload", "bad_payload", "decrypt_failed", "bad_chip"]
    assert [decode(Hit, o.value).crop_id for o in outputs if o.topic == topics.HITS] == ["good"]


async def test_track_fusion_leaves_a_fallback_crop_out_once_a_passed_crop_arrives(w: Wired) -> None:
    """The fallback (its face failed ingest's gate) would pull the fused template off the good view."""
    for send_reason, hits in ((SEND_REASON_UNPASSED_LIVE, 1), (SEND_REASON_BEST_SHOT, 0)):
        w.handler.fusion = TrackFusion("L2", clock=lambda: 0.0)  # the fake's 1-d vectors keep their scale
        fallback = _crop("first", 128)
        fallback.send_reason = send_reason
        good = _crop("second", 204)
        good.send_reason = SEND_REASON_BEST_SHOT
        assert await w.handler([crop_record(fallback)]) == []  # searched alone: no match
        outputs = await w.handler([crop_record(good, 1)])
        # Left out, the good view matches alone; fused with a passed crop of another look, it does not.
        assert len(outputs) == hits
