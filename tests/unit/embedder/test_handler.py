"""EmbedHandler decisions with a fake model and store: hit, discard, expired, refused, bad input."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
import pytest
from aiokafka import ConsumerRecord

from lfr.core import stats, topics
from lfr.core.crypto import KeyExpired, crop_aad, open_blob, probe_aad, seal
from lfr.core.ids import hit_id
from lfr.core.serde import decode, encode
from lfr.embedder.handler import HITS_WITHDRAWN, EmbedHandler
from lfr.embedder.track_fusion import TrackFusion
from lfr.v1.crop_pb2 import SEND_REASON_BEST_SHOT, SEND_REASON_UNPASSED_LIVE, FaceCrop
from lfr.v1.dead_letter_pb2 import DeadLetter
from lfr.v1.hit_pb2 import Hit
from lfr.watchlist.deployments import LiveDeployment
from lfr.watchlist.store import Candidate

SIZE = 150
KEY = b"k" * 32
PROBE_KEY = b"p" * 32


class FakeKeyring:
    def __init__(self) -> None:
        self.expired: set[str] = set()

    async def decrypt(self, blob, aad):  # type: ignore[no-untyped-def]
        if blob.key_id in self.expired:
            raise KeyExpired(blob.key_id)
        return open_blob(KEY, blob, aad)


class FakeProbeKeys:
    """One probe key per deployment, as DeploymentAlertKeys gives, without Redis."""

    async def seal(self, deployment_id: str, plaintext: bytes, aad: bytes):  # type: ignore[no-untyped-def]
        return seal(f"alert-{deployment_id}", PROBE_KEY, plaintext, aad)


class Rule:
    def is_match(self, raw: float, threshold: float | None = None) -> bool:
        return raw <= (0.6 if threshold is None else threshold)

    def to_score(self, raw: float) -> float:
        return 1 - raw / 2


class FakeEmbedder:
    card = Rule()
    model_id = "fake:1"
    chip_size = SIZE

    def embed(self, chips: Sequence[np.ndarray]) -> np.ndarray:
        # The chip's mean brightness stands in for identity.
        return np.array([[c.mean() / 255.0] for c in chips], dtype=np.float32)


@dataclass
class FakeMatcher:
    """One enrolled subject at 'brightness' 0.8; distance is the brightness difference."""

    calls: list[tuple[int, tuple[str, ...]]] = field(default_factory=list)
    # Subjects removed after the (bounded-consistency) search read, before confirmation.
    delisted: set[str] = field(default_factory=set)
    confirmed: list[list[str]] = field(default_factory=list)

    async def search(
        self, vectors: np.ndarray, watchlist_ids: Sequence[str], top_k: int
    ) -> list[list[Candidate]]:
        self.calls.append((len(vectors), tuple(watchlist_ids)))
        out = []
        for v in vectors:
            d = abs(float(v[0]) - 0.8)
            out.append([Candidate("subj-1", "wl-1", "wanted", d, 1 - d / 2)])
        return out

    async def confirm(self, candidates: Sequence[Candidate], watchlist_ids: Sequence[str]) -> list[Candidate]:
        self.confirmed.append([c.subject_id for c in candidates])
        return [c for c in candidates if c.subject_id not in self.delisted]


class FakeDeployments:
    async def live(self, deployment_id: str) -> LiveDeployment | None:
        return LiveDeployment("dep", ("wl-1",), 0.1, "fake") if deployment_id == "dep" else None


def _chip(brightness: int) -> bytes:
    img = np.full((SIZE, SIZE, 3), brightness, np.uint8)
    return cv2.imencode(".jpg", img)[1].tobytes()


def _record(crop: FaceCrop | bytes, offset: int = 0) -> ConsumerRecord:
    value = crop if isinstance(crop, bytes) else encode(crop)
    return ConsumerRecord(topics.CROPS, 0, offset, 0, 0, b"cam", value, None, 0, len(value), [])


def _crop(crop_id: str, brightness: int, deployment: str = "dep", key_id: str = "key1") -> FaceCrop:
    return FaceCrop(
        crop_id=crop_id,
        deployment_id=deployment,
        camera_id="cam",
        track_id="t",
        chip=seal(key_id, KEY, _chip(brightness), crop_aad(crop_id, "cam", deployment)),
    )


@pytest.fixture
def handler():  # type: ignore[no-untyped-def]
    counts: dict[str, dict[str, int]] = {}
    per_crop: dict[str, dict[str, int]] = {}

    async def sink(dep: str, crops: dict[str, dict[str, int]]) -> None:
        for crop_id, c in crops.items():
            per_crop[crop_id] = c
            for k, v in c.items():
                counts.setdefault(dep, {}).setdefault(k, 0)
                counts[dep][k] += v

    keyring = FakeKeyring()
    h = EmbedHandler(3, keyring, FakeProbeKeys(), FakeEmbedder(), FakeMatcher(), FakeDeployments(), sink)  # type: ignore[arg-type]
    h.counts = counts  # type: ignore[attr-defined]
    h.per_crop = per_crop  # type: ignore[attr-defined]
    return h


async def test_match_becomes_hit_and_non_match_leaves_nothing(handler) -> None:  # type: ignore[no-untyped-def]
    outputs = await handler([_record(_crop("match", 204)), _record(_crop("stranger", 40), 1)])
    assert [o.topic for o in outputs] == [topics.HITS]
    hit = decode(Hit, outputs[0].value)
    assert hit.hit_id == hit_id("match", "subj-1") and hit.rank == 1 and hit.crop_id == "match"
    assert hit.threshold == pytest.approx(0.95) and hit.score > hit.threshold  # both in score units
    assert outputs[0].key == b"dep"
    assert hit.probe.key_id == "alert-dep", "probes are sealed under their deployment's key"
    probe = open_blob(PROBE_KEY, hit.probe, probe_aad("match", "dep"))
    assert cv2.imdecode(np.frombuffer(probe, np.uint8), cv2.IMREAD_COLOR).shape == (SIZE, SIZE, 3)
    assert not any(b"stranger" in o.value for o in outputs), "nothing about the non-match is emitted"
    c = handler.counts["dep"]
    assert c[stats.FACES_ANALYSED] == 2 and c[stats.HITS] == 1 and c[stats.CROPS_DISCARDED] == 1
    assert handler.matcher.calls == [(2, ("wl-1",))], "one batched search, restricted to the deployment"
    # Counts go out per crop id, so the sink can count each crop once however often it is redelivered.
    assert handler.per_crop == {
        "match": {stats.FACES_ANALYSED: 1, stats.HITS: 1},
        "stranger": {stats.FACES_ANALYSED: 1, stats.CROPS_DISCARDED: 1},
    }


async def test_hit_on_a_subject_delisted_after_the_search_read_is_withdrawn(handler) -> None:  # type: ignore[no-untyped-def]
    """The search may read a moment behind the latest writes; only a confirmed subject raises a hit."""
    handler.matcher.delisted.add("subj-1")
    before = HITS_WITHDRAWN._value.get()
    outputs = await handler([_record(_crop("match", 204)), _record(_crop("stranger", 40), 1)])
    assert outputs == []
    assert handler.matcher.confirmed == [["subj-1"]], "only threshold-clearing candidates are confirmed"
    assert HITS_WITHDRAWN._value.get() == before + 1
    c = handler.counts["dep"]
    assert c[stats.FACES_ANALYSED] == 2 and c[stats.CROPS_DISCARDED] == 2 and stats.HITS not in c


async def test_no_confirmation_call_when_nothing_clears_the_threshold(handler) -> None:  # type: ignore[no-untyped-def]
    assert await handler([_record(_crop("stranger", 40))]) == []
    assert handler.matcher.confirmed == []


async def test_redelivery_gives_the_same_hit_id(handler) -> None:  # type: ignore[no-untyped-def]
    crop = _crop("again", 204)
    first = await handler([_record(crop)])
    second = await handler([_record(crop)])
    assert decode(Hit, first[0].value).hit_id == decode(Hit, second[0].value).hit_id


async def test_expired_key_is_counted_not_dead_lettered(handler) -> None:  # type: ignore[no-untyped-def]
    handler.keyring.expired.add("old")
    outputs = await handler([_record(_crop("late", 204, key_id="old"))])
    assert outputs == []
    assert handler.counts["dep"] == {stats.CROPS_EXPIRED: 1}


async def test_unknown_deployment_is_refused_unread(handler) -> None:  # type: ignore[no-untyped-def]
    outputs = await handler([_record(_crop("x", 204, deployment="rogue"))])
    assert len(outputs) == 1 and outputs[0].topic == topics.DEADLETTER
    dl = decode(DeadLetter, outputs[0].value)
    assert dl.reason == "deployment_not_live" and dl.payload == b""
    assert handler.counts["rogue"] == {stats.CROPS_REFUSED: 1}


async def test_bad_input_goes_to_dead_letter_and_batch_goes_on(handler) -> None:  # type: ignore[no-untyped-def]
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
    outputs = await handler(
        [
            _record(b"\xff\xfe garbage"),
            _record(FaceCrop(crop_id="no-dep")),
            _record(tampered),
            _record(wrong_size),
            _record(_crop("good", 204)),
        ]
    )
    reasons = [decode(DeadLetter, o.value).reason for o in outputs if o.topic == topics.DEADLETTER]
    assert reasons == ["bad_payload", "bad_payload", "decrypt_failed", "bad_chip"]
    assert [decode(Hit, o.value).crop_id for o in outputs if o.topic == topics.HITS] == ["good"]


async def test_track_fusion_leaves_a_fallback_crop_out_once_a_passed_crop_arrives(handler) -> None:  # type: ignore[no-untyped-def]
    """The fallback (its face failed ingest's gate) would pull the fused template off the good view."""
    for send_reason, hits in ((SEND_REASON_UNPASSED_LIVE, 1), (SEND_REASON_BEST_SHOT, 0)):
        handler.fusion = TrackFusion("L2", clock=lambda: 0.0)  # the fake's 1-d vectors keep their scale
        fallback = _crop("first", 128)
        fallback.send_reason = send_reason
        good = _crop("second", 204)
        good.send_reason = SEND_REASON_BEST_SHOT
        assert await handler([_record(fallback)]) == []  # searched alone: no match
        outputs = await handler([_record(good, 1)])
        # Left out, the good view matches alone; fused with a passed crop of another look, it does not.
        assert len(outputs) == hits
