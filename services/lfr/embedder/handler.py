"""The embedder's batch handler: each crop is either a hit on its deployment's watchlists or gone.

For a batch of FaceCrop records it decrypts the chips (an expired key means the crop is already deleted by
design: counted, never retried), embeds every readable chip in one batched model call, searches the
vector store once per deployment restricted to that deployment's watchlists, and emits a Hit for every
candidate that clears the deployment's threshold. Nothing derived from a non-matching face leaves this
function: no output, no Redis key, no log line; only counters.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np
from aiokafka import ConsumerRecord
from prometheus_client import Counter, Histogram

from lfr.core import stats, topics
from lfr.core.crypto import CropKeyring, DecryptFailed, KeyExpired, crop_aad, probe_aad
from lfr.core.ids import hit_id
from lfr.core.send_reasons import passed_by_reason
from lfr.core.serde import SerdeError, decode, encode, require
from lfr.core.stage import Output, dead_letter
from lfr.core.timeutil import ts_now
from lfr.embedder.track_fusion import TrackFusion
from lfr.v1.common_pb2 import EncryptedBlob
from lfr.v1.crop_pb2 import FaceCrop
from lfr.v1.hit_pb2 import Hit
from lfr.watchlist.deployments import LiveDeployment
from lfr.watchlist.enrol import image_size
from lfr.watchlist.store import Candidate

log = logging.getLogger(__name__)
STAGE = "embedder"

CROPS = Counter("lfr_embedder_crops_total", "Crops by outcome", ["outcome"])
HITS_WITHDRAWN = Counter(
    "lfr_embedder_hits_withdrawn_total",
    "Threshold-clearing candidates dropped because the subject was no longer listed at confirmation",
)
EMBED_SECONDS = Histogram(
    "lfr_embedder_embed_seconds",
    "Model time per batch",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
FUSED_CROPS = Histogram(
    "lfr_embedder_fused_crops",
    "Crops fused into the template each search used (1 = the crop alone)",
    buckets=(1, 2, 3, 4, 6, 8),
)
SEARCH_SECONDS = Histogram(
    "lfr_embedder_search_seconds",
    "Vector search time per deployment batch",
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
)


class DeploymentLookup(Protocol):
    async def live(self, deployment_id: str) -> LiveDeployment | None:
        """The deployment if it is authorised, running and inside its time window; else None."""
        ...


class Matcher(Protocol):
    async def search(
        self, vectors: np.ndarray, watchlist_ids: Sequence[str], top_k: int
    ) -> list[list[Candidate]]: ...

    async def confirm(self, candidates: Sequence[Candidate], watchlist_ids: Sequence[str]) -> list[Candidate]:
        """The candidates still on these watchlists at the latest state (lfr.watchlist.store.confirm)."""
        ...


class MatchRule(Protocol):
    def is_match(self, raw: float, threshold: float | None = None) -> bool: ...

    def to_score(self, raw: float) -> float: ...


class FaceEmbedder(Protocol):
    @property
    def card(self) -> MatchRule: ...  # read-only, so a model card (which has more) satisfies it

    model_id: str
    chip_size: int

    def embed(self, chips: Sequence[np.ndarray]) -> np.ndarray: ...


class CounterSink(Protocol):
    async def __call__(self, deployment_id: str, per_crop: dict[str, dict[str, int]]) -> None:
        """Add each crop's counters once, however often its batch is retried or redelivered."""
        ...


class ProbeSealer(Protocol):
    async def seal(self, deployment_id: str, plaintext: bytes, aad: bytes) -> EncryptedBlob:
        """Seal a probe under the deployment's alert-retention key (destroyed by a purge)."""
        ...


# deployment id -> crop id -> counter name -> count
Counts = dict[str, dict[str, dict[str, int]]]


def _new_counts() -> Counts:
    return defaultdict(lambda: defaultdict(lambda: defaultdict(int)))


def _decode_chip(jpeg: bytes) -> np.ndarray | None:
    """The chip's pixels, or None when OpenCV cannot read them (it raises on some corrupt streams)."""
    try:
        return cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:
        return None


@dataclass
class _Readable:
    crop: FaceCrop
    chip: np.ndarray
    jpeg: bytes
    deployment: LiveDeployment


class EmbedHandler:
    def __init__(
        self,
        top_k: int,
        keyring: CropKeyring,
        probe_keys: ProbeSealer,
        embedder: FaceEmbedder,
        matcher: Matcher,
        deployments: DeploymentLookup,
        count: CounterSink,
        model_batch: int = 32,
        fusion: TrackFusion | None = None,
    ) -> None:
        self.top_k = top_k
        self.model_batch = model_batch
        self.keyring = keyring
        self.probe_keys = probe_keys
        self.embedder = embedder
        self.matcher = matcher
        self.deployments = deployments
        self.count = count
        self.fusion = fusion

    async def __call__(self, records: Sequence[ConsumerRecord]) -> list[Output]:
        outputs: list[Output] = []
        readable: list[_Readable] = []
        counts = _new_counts()
        seen: set[tuple[str, str]] = set()
        for rec in records:
            item = await self._open(rec, outputs, counts)
            if item is None:
                continue
            # A record replayed (or redelivered) into the same batch: decided once, like one in a later batch.
            ident = (item.crop.deployment_id, item.crop.crop_id)
            if ident in seen:
                continue
            seen.add(ident)
            readable.append(item)
        if readable:
            outputs.extend(await self._match(readable, counts))
        for deployment_id, per_crop in counts.items():
            await self.count(deployment_id, {crop_id: dict(c) for crop_id, c in per_crop.items()})
        return outputs

    async def _open(self, rec: ConsumerRecord, outputs: list[Output], counts: Counts) -> _Readable | None:
        try:
            crop = decode(FaceCrop, rec.value)
            require(crop, "crop_id", "deployment_id", "camera_id")
        except SerdeError as exc:
            CROPS.labels("bad_payload").inc()
            outputs.append(dead_letter(STAGE, rec, "bad_payload", str(exc), keep_payload=False))
            return None
        deployment = await self.deployments.live(crop.deployment_id)
        if deployment is None:
            # Not authorised or not running: the crop is refused unread, so nothing about the face is used.
            CROPS.labels("refused").inc()
            counts[crop.deployment_id][crop.crop_id][stats.CROPS_REFUSED] += 1
            outputs.append(
                dead_letter(
                    STAGE,
                    rec,
                    "deployment_not_live",
                    f"deployment {crop.deployment_id} is not authorised and running",
                    keep_payload=False,
                )
            )
            return None
        try:
            jpeg = await self.keyring.decrypt(
                crop.chip, crop_aad(crop.crop_id, crop.camera_id, crop.deployment_id)
            )
        except KeyExpired:
            CROPS.labels("expired").inc()
            counts[crop.deployment_id][crop.crop_id][stats.CROPS_EXPIRED] += 1
            return None
        except DecryptFailed as exc:
            CROPS.labels("undecryptable").inc()
            outputs.append(dead_letter(STAGE, rec, "decrypt_failed", str(exc), keep_payload=False))
            return None
        size = self.embedder.chip_size
        # The header is read first: a chip claiming 60000x60000 pixels is refused without allocating them.
        dims = image_size(jpeg)
        chip = _decode_chip(jpeg) if dims == (size, size) else None
        if chip is None or chip.shape[:2] != (size, size):
            CROPS.labels("bad_chip").inc()
            if chip is not None:
                shape = f"{chip.shape[1]}x{chip.shape[0]}"
            else:
                shape = "undecodable" if dims is None or dims == (size, size) else f"{dims[0]}x{dims[1]}"
            outputs.append(
                dead_letter(
                    STAGE,
                    rec,
                    "bad_chip",
                    f"chip {shape}, embedder expects {size}x{size} "
                    f"({crop.chip_template or 'no template named'})",
                    keep_payload=False,
                )
            )
            return None
        return _Readable(crop, chip, jpeg, deployment)

    async def _match(self, items: list[_Readable], counts: Counts) -> list[Output]:
        """Embed in model-sized chunks, searching each chunk while the next one is embedded.

        The vector store answers from another process (or cluster), so its search overlaps the model's
        next chunk instead of adding to it; on two cores this hides most of the search time.
        """
        size = self.model_batch
        chunks = [items[i : i + size] for i in range(0, len(items), size)]
        outputs: list[Output] = []
        pending: asyncio.Future[list[Output]] | None = None
        for chunk in chunks:
            embedding = asyncio.ensure_future(self._embed(chunk))
            if pending is not None:
                outputs.extend(await pending)
            vectors = self._fused(chunk, await embedding)
            pending = asyncio.ensure_future(self._search(chunk, vectors, counts))
        if pending is not None:
            outputs.extend(await pending)
        # The chips and JPEGs of non-matches die with these objects; drop the pixels explicitly anyway.
        for item in items:
            item.chip = np.empty(0)
        return outputs

    def _fused(self, chunk: list[_Readable], vectors: np.ndarray) -> np.ndarray:
        """Each crop's search vector: its track's fused template so far (lfr.embedder.track_fusion)."""
        if self.fusion is None:
            return vectors
        out = np.empty_like(vectors)
        for i, item in enumerate(chunk):
            c = item.crop
            key = (c.deployment_id, c.camera_id, c.track_id)
            passed = passed_by_reason(c.send_reason) is not False  # an older producer's: passed
            out[i], n = self.fusion.update(key, c.crop_id, vectors[i], float(c.quality.score), passed)
            FUSED_CROPS.observe(n)
        return out

    async def _embed(self, chunk: list[_Readable]) -> np.ndarray:
        with EMBED_SECONDS.time():
            return await asyncio.to_thread(self.embedder.embed, [i.chip for i in chunk])

    async def _search(self, items: list[_Readable], vectors: np.ndarray, counts: Counts) -> list[Output]:
        by_deployment: dict[str, list[int]] = defaultdict(list)
        for idx, item in enumerate(items):
            by_deployment[item.deployment.deployment_id].append(idx)
        outputs: list[Output] = []
        for deployment_id, idxs in by_deployment.items():
            dep = items[idxs[0]].deployment
            with SEARCH_SECONDS.time():
                results = await self.matcher.search(vectors[idxs], dep.watchlist_ids, self.top_k)
            cleared = [
                [c for c in candidates if self.embedder.card.is_match(c.distance, dep.threshold)]
                for candidates in results
            ]
            held = await self._still_listed(cleared, dep)
            for idx, found in zip(idxs, cleared, strict=True):
                item = items[idx]
                crop_counts = counts[deployment_id][item.crop.crop_id]
                crop_counts[stats.FACES_ANALYSED] += 1
                matched = [c for c in found if (c.watchlist_id, c.subject_id) in held]
                if not matched:
                    CROPS.labels("no_match").inc()
                    crop_counts[stats.CROPS_DISCARDED] += 1
                    continue
                CROPS.labels("hit").inc()
                for rank, cand in enumerate(sorted(matched, key=lambda c: -c.score), start=1):
                    crop_counts[stats.HITS] += 1
                    outputs.append(await self._hit(item, cand, rank, dep))
        return outputs

    async def _still_listed(
        self, cleared: list[list[Candidate]], dep: LiveDeployment
    ) -> set[tuple[str, str]]:
        """(watchlist, subject) pairs of the threshold-clearing candidates that are still listed now.

        The search may read a moment behind the latest writes (milvus.search_consistency); a hit on a
        subject deleted in that moment is withdrawn here, before anything about it leaves the stage.
        """
        flat = [c for found in cleared for c in found]
        if not flat:
            return set()
        kept = await self.matcher.confirm(flat, dep.watchlist_ids)
        held = {(c.watchlist_id, c.subject_id) for c in kept}
        withdrawn = {(c.watchlist_id, c.subject_id) for c in flat} - held
        if withdrawn:
            HITS_WITHDRAWN.inc(len(withdrawn))
            log.info("withdrew hits on %d subject(s) no longer listed", len(withdrawn))
        return held

    async def _hit(self, item: _Readable, cand: Candidate, rank: int, dep: LiveDeployment) -> Output:
        crop = item.crop
        probe = await self.probe_keys.seal(
            crop.deployment_id, item.jpeg, probe_aad(crop.crop_id, crop.deployment_id)
        )
        hit = Hit(
            hit_id=hit_id(crop.crop_id, cand.subject_id),
            crop_id=crop.crop_id,
            deployment_id=crop.deployment_id,
            camera_id=crop.camera_id,
            track_id=crop.track_id,
            subject_id=cand.subject_id,
            watchlist_id=cand.watchlist_id,
            score=cand.score,
            threshold=self.embedder.card.to_score(dep.threshold),  # score units, comparable with score
            rank=rank,
            embedder_model_id=self.embedder.model_id,
            captured_at=crop.captured_at,
            probe=probe,
            distance=cand.distance,
            category=cand.category,
            trace=crop.trace,
            hit_at=ts_now(),
        )
        return Output(topics.HITS, encode(hit), key=crop.deployment_id.encode())
