"""Typed stand-ins for what the embedder's handler talks to: the crop key store, the probe keys, the model,
the vector store, the deployments and the counters; and sealed crops to feed it.

Shared by the handler's unit tests, the hostile-input tests and the fuzz targets, so the three exercise one
set of fakes that type-check against the handler's protocols (lfr.embedder.handler). A chip's mean
brightness stands in for identity: the fake model returns it as a 1-d vector, and the fake store holds one
subject at ``enrolled`` brightness, at the distance between the two.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
from aiokafka import ConsumerRecord

from lfr.core import topics
from lfr.core.crypto import KeyExpired, crop_aad, open_blob, seal
from lfr.core.serde import encode
from lfr.embedder.handler import EmbedHandler
from lfr.embedder.track_fusion import TrackFusion
from lfr.v1.common_pb2 import EncryptedBlob
from lfr.v1.crop_pb2 import FaceCrop
from lfr.watchlist.deployments import LiveDeployment
from lfr.watchlist.store import Candidate

SIZE = 150
KEY = b"k" * 32
PROBE_KEY = b"p" * 32
DEPLOYMENT = "dep"
WATCHLIST = "wl-1"
SUBJECT = "subj-1"


@dataclass
class FakeKeyring:
    """The crop key store: one key for every key id, except ids marked expired."""

    expired: set[str] = field(default_factory=set)

    async def decrypt(self, blob: EncryptedBlob, aad: bytes) -> bytes:
        if blob.key_id in self.expired:
            raise KeyExpired(blob.key_id)
        return open_blob(KEY, blob, aad)


class FakeProbeKeys:
    """One probe key per deployment, as DeploymentAlertKeys gives, without Redis."""

    async def seal(self, deployment_id: str, plaintext: bytes, aad: bytes) -> EncryptedBlob:
        return seal(f"alert-{deployment_id}", PROBE_KEY, plaintext, aad)


class Rule:
    """An L2-like card: a match at or under the threshold (0.6 unless the deployment sets one)."""

    def is_match(self, raw: float, threshold: float | None = None) -> bool:
        return raw <= (0.6 if threshold is None else threshold)

    def to_score(self, raw: float) -> float:
        return 1 - raw / 2


class FakeEmbedder:
    model_id = "fake:1"
    chip_size = SIZE

    def __init__(self) -> None:
        self._rule = Rule()

    @property
    def card(self) -> Rule:
        return self._rule

    def embed(self, chips: Sequence[np.ndarray]) -> np.ndarray:
        for c in chips:
            assert c.shape == (SIZE, SIZE, 3), c.shape  # the handler resizes nothing: chips arrive checked
        return np.array([[c.mean() / 255.0] for c in chips], dtype=np.float32)


@dataclass
class FakeMatcher:
    """One enrolled subject at brightness ``enrolled`` (0..1); the distance is the brightness difference."""

    enrolled: float = 0.8
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
            d = abs(float(v[0]) - self.enrolled)
            out.append([Candidate(SUBJECT, WATCHLIST, "wanted", d, 1 - d / 2)])
        return out

    async def confirm(self, candidates: Sequence[Candidate], watchlist_ids: Sequence[str]) -> list[Candidate]:
        self.confirmed.append([c.subject_id for c in candidates])
        return [c for c in candidates if c.subject_id not in self.delisted]


@dataclass
class FakeDeployments:
    """One live deployment, ``dep``, searching ``wl-1`` at ``threshold``; every other id is not live."""

    threshold: float = 0.1

    async def live(self, deployment_id: str) -> LiveDeployment | None:
        if deployment_id != DEPLOYMENT:
            return None
        return LiveDeployment(DEPLOYMENT, (WATCHLIST,), self.threshold, FakeEmbedder.model_id)


@dataclass
class CountSink:
    """The counters the handler reports, per deployment and per crop."""

    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    per_crop: dict[str, dict[str, int]] = field(default_factory=dict)

    async def __call__(self, deployment_id: str, per_crop: dict[str, dict[str, int]]) -> None:
        for crop_id, c in per_crop.items():
            self.per_crop[crop_id] = c
            for k, v in c.items():
                self.counts.setdefault(deployment_id, {}).setdefault(k, 0)
                self.counts[deployment_id][k] += v


@dataclass
class Wired:
    """An EmbedHandler with the fakes above, kept at hand so a test can steer and read them."""

    handler: EmbedHandler
    keyring: FakeKeyring
    matcher: FakeMatcher
    sink: CountSink


def wired_handler(threshold: float = 0.1, fusion: TrackFusion | None = None) -> Wired:
    keyring, matcher, sink = FakeKeyring(), FakeMatcher(), CountSink()
    handler = EmbedHandler(
        3, keyring, FakeProbeKeys(), FakeEmbedder(), matcher, FakeDeployments(threshold), sink, fusion=fusion
    )
    return Wired(handler, keyring, matcher, sink)


def chip_jpeg(brightness: int) -> bytes:
    """A plain chip of one brightness (the fake model's identity), JPEG-encoded as ingest sends it."""
    return cv2.imencode(".jpg", np.full((SIZE, SIZE, 3), brightness, np.uint8))[1].tobytes()


def sealed_crop(
    crop_id: str, chip: bytes, deployment: str = DEPLOYMENT, key_id: str = "key1", track_id: str = "t"
) -> FaceCrop:
    return FaceCrop(
        crop_id=crop_id,
        deployment_id=deployment,
        camera_id="cam",
        track_id=track_id,
        chip=seal(key_id, KEY, chip, crop_aad(crop_id, "cam", deployment)),
    )


def crop_record(
    value: FaceCrop | bytes | None, offset: int = 0, headers: list[tuple[str, bytes]] | None = None
) -> ConsumerRecord:
    """A record of the crops topic as the consumer hands it over (``None``: a tombstone)."""
    data = encode(value) if isinstance(value, FaceCrop) else value
    size = len(data) if data else 0
    return ConsumerRecord(topics.CROPS, 0, offset, 0, 0, b"cam", data, None, 0, size, headers or [])
