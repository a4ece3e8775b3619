"""Retrospective search: the faces of a still image or a video file against watchlists or a custody gallery.

Rules this module enforces (design: privacy rules 2-4):

* no case reference or no reason, no search: the request is refused before any image is decoded;
* every face gets a ranked candidate list (top k, each with its score and whether it clears the model
  card threshold), and nothing more: the system never names a match, an officer reviews the list;
* every search is written to the hash-chained audit log (action ``search.retrospective``: case reference,
  reason, actor, target ids and counts; never names, images or embeddings), and a search whose audit
  record cannot be written returns no results;
* results are kept per case in Redis under the case retention period (ids, scores, boxes only), and the
  uploaded media is never stored.

Analysis and vector search are CPU-bound and synchronous, so they run in worker threads; the audit log and
the case store are async (aiokafka, redis.asyncio).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
import redis.asyncio as aioredis

from lfr.core.audit import AuditLog
from lfr.core.config import Settings
from lfr.core.ids import new_id
from lfr.core.milvus import MilvusConnection
from lfr.core.timeutil import iso, now_ms
from lfr.retro.cases import CaseRetentionError, CaseStore, check_retention_days
from lfr.retro.schemas import (
    MAX_TOP_K,
    CandidateOut,
    FaceOut,
    SearchResult,
    SearchTarget,
    check_case_ref,
    check_reason,
)
from lfr.retro.video import VIDEO_SUFFIXES, video_best_shots
from lfr.vision import AnalysedFace, FaceAnalyzer, ModelCard
from lfr.watchlist.enrol.photos import EnrolmentRejected, decode_checked

if TYPE_CHECKING:  # imported where used: pymilvus loads only when a search needs it
    from lfr.retro.gallery import Gallery
    from lfr.watchlist.store import WatchlistStore

log = logging.getLogger(__name__)

AUDIT_ACTION = "search.retrospective"


class RetroSearchError(ValueError):
    """The search request is invalid (bad target, unreadable file); the message says what to change."""


class CandidateSource(Protocol):
    """Turns probe vectors into ranked candidates; implemented for watchlists and galleries."""

    def search(self, vectors: np.ndarray, top_k: int) -> list[list[CandidateOut]]: ...


class WatchlistSource:
    """Live watchlists through lfr.watchlist.store (restricted to the named watchlists, unexpired rows)."""

    def __init__(
        self,
        settings: Settings,
        card: ModelCard,
        watchlist_ids: Sequence[str],
        store: WatchlistStore | None = None,
        milvus: MilvusConnection | None = None,
    ) -> None:
        from lfr.watchlist.store import WatchlistStore

        self.card = card
        self.watchlist_ids = list(watchlist_ids)
        self.store = store or WatchlistStore(settings, card, milvus=milvus)

    def search(self, vectors: np.ndarray, top_k: int) -> list[list[CandidateOut]]:
        found = self.store.search(vectors, self.watchlist_ids, top_k)
        # The search may read a moment behind the latest writes: drop any subject deleted in that moment.
        held = {
            (c.watchlist_id, c.subject_id)
            for c in self.store.confirm([c for row in found for c in row], self.watchlist_ids)
        }
        found = [[c for c in row if (c.watchlist_id, c.subject_id) in held] for row in found]
        return [
            [
                CandidateOut(
                    rank=r,
                    subject_id=c.subject_id,
                    watchlist_id=c.watchlist_id,
                    distance=c.distance,
                    score=c.score,
                    clears_threshold=self.card.is_match(c.distance),
                )
                for r, c in enumerate(row, start=1)
            ]
            for row in found
        ]


class GallerySource:
    def __init__(
        self,
        settings: Settings,
        card: ModelCard,
        name: str,
        gallery: Gallery | None = None,
        milvus: MilvusConnection | None = None,
    ) -> None:
        from lfr.retro.gallery import Gallery

        self.card = card
        self.gallery = gallery or Gallery(settings, name, card, milvus=milvus)

    def search(self, vectors: np.ndarray, top_k: int) -> list[list[CandidateOut]]:
        found = self.gallery.search(vectors, top_k)
        return [
            [
                CandidateOut(
                    rank=r,
                    subject_id=c.subject_id,
                    gallery=self.gallery.name,
                    item_id=c.item_id,
                    distance=c.distance,
                    score=c.score,
                    clears_threshold=self.card.is_match(c.distance),
                )
                for r, c in enumerate(row, start=1)
            ]
            for row in found
        ]


@dataclass(frozen=True)
class _Face:
    face: AnalysedFace
    frame_index: int | None = None
    time_s: float | None = None
    track_id: int | None = None
    track_frames: int | None = None


def source_kind(path: Path) -> str:
    return "video" if Path(path).suffix.lower() in VIDEO_SUFFIXES else "image"


class RetroSearcher:
    """Runs searches with shared, long-lived parts (analyzer, audit log, case store); one per process."""

    def __init__(
        self,
        settings: Settings,
        analyzer: FaceAnalyzer,
        audit: AuditLog,
        cases: CaseStore,
        sources: dict[str, CandidateSource] | None = None,
        sample_fps: float | None = None,
        max_video_s: float | None = None,
        milvus: MilvusConnection | None = None,
    ) -> None:
        """``milvus``: the process's shared Milvus connection (its owner closes it); without one the
        searcher opens its own, shared by every watchlist and gallery it searches, and closes it."""
        self.settings = settings
        self.analyzer = analyzer
        self.card: ModelCard = analyzer.embedder.card
        self.audit = audit
        self.cases = cases
        self.sources = sources if sources is not None else {}
        self.milvus = milvus or MilvusConnection(settings)
        self._owns_connection = milvus is None
        self._watchlist_store: WatchlistStore | None = None  # one store for every watchlist combination
        self.sample_fps = sample_fps or settings.retro.video_sample_fps
        self.max_video_s = max_video_s or settings.retro.max_video_s

    def close(self) -> None:
        """Close the cached sources and, when the searcher opened it, its Milvus connection."""
        for src in self.sources.values():
            inner = getattr(src, "gallery", None) or getattr(src, "store", None)
            closer = getattr(inner, "close", None)
            if closer is not None:
                closer()
        self.sources.clear()
        self._watchlist_store = None
        if self._owns_connection:
            self.milvus.close()

    def _source(self, target: SearchTarget) -> CandidateSource:
        key = (
            f"gallery:{target.gallery}"
            if target.gallery
            else "watchlists:" + ",".join(sorted(target.watchlists))
        )
        src = self.sources.get(key)
        if src is None:
            if target.gallery:
                src = GallerySource(self.settings, self.card, target.gallery, milvus=self.milvus)
            else:
                if self._watchlist_store is None:
                    from lfr.watchlist.store import WatchlistStore

                    self._watchlist_store = WatchlistStore(self.settings, self.card, milvus=self.milvus)
                src = WatchlistSource(
                    self.settings, self.card, target.watchlists, store=self._watchlist_store
                )
            self.sources[key] = src
        return src

    def _faces(self, path: Path, kind: str) -> tuple[list[_Face], int]:
        if kind == "video":
            ing = self.settings.ingest
            vf = video_best_shots(
                self.analyzer,
                path,
                self.sample_fps,
                ing.track_iou,
                ing.track_max_age_s,
                self.max_video_s,
                self.settings.detector.max_image_pixels,
                ing.scene_cut_distance,
            )
            faces = [
                _Face(tr.best, tr.best_frame, round(tr.best_time, 3), tr.track_id, tr.frames)
                for tr in vf.tracks
                if tr.best is not None
            ]
            return faces, vf.frames_analysed
        data = path.read_bytes()
        try:
            # Sized from the header first: an upload claiming 30000x30000 pixels is refused, not decoded.
            image = decode_checked(data, max(len(data), 1), self.settings.detector.max_image_pixels)
        except EnrolmentRejected as exc:
            raise RetroSearchError(f"cannot search {path.name}: {exc}") from None
        return [_Face(f) for f in self.analyzer.analyse(image)], 1

    async def search(
        self,
        path: Path,
        case_ref: str,
        reason: str,
        actor: str,
        watchlist_ids: Sequence[str] | None = None,
        gallery: str | None = None,
        top_k: int = 5,
        retention_days: int | None = None,
    ) -> SearchResult:
        """Search every face in ``path``; refuse without case reference or reason; audit; store per case.

        ``retention_days`` sets the case's retention period (see lfr.retro.cases); None keeps the case's.
        """
        case_ref, reason = check_case_ref(case_ref), check_reason(reason)
        try:
            check_retention_days(self.settings, retention_days)
        except CaseRetentionError as exc:
            raise RetroSearchError(str(exc)) from None
        if not actor:
            raise RetroSearchError("a retrospective search needs an actor (who is searching)")
        if not 1 <= top_k <= MAX_TOP_K:
            raise RetroSearchError(f"top_k must be between 1 and {MAX_TOP_K}")
        try:
            target = SearchTarget(watchlists=list(watchlist_ids or []), gallery=gallery)
        except ValueError as exc:
            raise RetroSearchError("search either --watchlist ids or one --gallery (exactly one)") from exc
        path = Path(path)
        if not path.is_file():
            raise RetroSearchError(f"file {path.name} does not exist")
        search_id = new_id()
        kind = source_kind(path)
        t0 = time.perf_counter()
        details: dict[str, str] = {
            "search_id": search_id,
            "source": kind,
            "target": target.kind,
            "top_k": str(top_k),
            "model": self.card.model_id,
            "threshold": f"{self.card.threshold:g}",
        }
        if target.gallery:
            details["gallery"] = target.gallery
        else:
            details["watchlists"] = ",".join(target.watchlists)
        try:
            faces, frames = await asyncio.to_thread(self._faces, path, kind)
            src = self._source(target)
            vectors = (
                np.stack([f.face.embedding for f in faces]) if faces else np.zeros((0, self.card.dim or 1))
            )
            lists = await asyncio.to_thread(src.search, vectors, top_k) if faces else []
            # Read the case's period only now, not before a minutes-long video analysis, so a search on
            # the same case that finished meanwhile is not overwritten with a stale period.
            retention = await self.cases.resolve(case_ref, retention_days)
        except Exception as exc:
            details.update(outcome="failed", error=type(exc).__name__)
            await self.audit.append(actor, AUDIT_ACTION, f"case:{case_ref}", reason, details)
            raise
        out = [
            FaceOut(
                face_index=i,
                bbox=tuple(float(v) for v in f.face.bbox),
                frame_index=f.frame_index,
                time_s=f.time_s,
                track_id=f.track_id,
                track_frames=f.track_frames,
                quality_score=round(f.face.quality.score, 4),
                quality_passed=f.face.quality.passed,
                quality_reasons=list(f.face.quality.reasons),
                candidates=cands,
            )
            for i, (f, cands) in enumerate(zip(faces, lists, strict=True))
        ]
        assert self.card.metric is not None and self.card.threshold is not None
        result = SearchResult(
            search_id=search_id,
            case_ref=case_ref,
            created_at=iso(now_ms()),
            actor=actor,
            source_kind=kind,
            target=target,
            top_k=top_k,
            model=self.card.model_id,
            metric=self.card.metric,
            threshold=self.card.threshold,
            frames_analysed=frames,
            faces=out,
            retention_days=retention.days,
            retention_changed_from_days=retention.previous_days if retention.changed else None,
        )
        details.update(
            outcome="ok",
            faces=str(len(out)),
            faces_passing_quality=str(sum(f.quality_passed for f in out)),
            candidates=str(result.candidate_count),
            above_threshold=str(result.above_threshold),
            frames=str(frames),
            retention_days=str(retention.days),
        )
        if retention.changed:
            details["retention_changed_from_days"] = str(retention.previous_days)
        # Audit first: a search that cannot be recorded must not hand out results.
        await self.audit.append(actor, AUDIT_ACTION, f"case:{case_ref}", reason, details)
        await self.cases.save(result, retention)
        log.info(
            "retrospective search %s: %d faces, %d candidates in %.0f ms",
            search_id,
            len(out),
            result.candidate_count,
            (time.perf_counter() - t0) * 1000,
        )
        return result


async def retrospective_search(
    settings: Settings,
    image_or_video_path: Path,
    case_ref: str,
    reason: str,
    actor: str,
    watchlist_ids: Sequence[str] | None = None,
    gallery: str | None = None,
    top_k: int = 5,
    analyzer: FaceAnalyzer | None = None,
    sources: dict[str, CandidateSource] | None = None,
    retention_days: int | None = None,
) -> SearchResult:
    """One search with its own connections (CLI and scripts); servers keep a RetroSearcher instead.

    The case reference, reason and retention period are checked before anything connects or decodes, so a
    refused search costs nothing and leaves nothing behind.
    """
    from lfr.core.bus import make_producer
    from lfr.core.redis_client import make_redis

    check_case_ref(case_ref)
    check_reason(reason)
    try:
        check_retention_days(settings, retention_days)
    except CaseRetentionError as exc:
        raise RetroSearchError(str(exc)) from None
    redis: aioredis.Redis = make_redis(settings)
    producer = make_producer(settings, "retro-search")
    await producer.start()
    try:
        searcher = RetroSearcher(
            settings,
            analyzer or FaceAnalyzer(settings),
            AuditLog(settings, producer, redis),
            CaseStore(settings, redis),
            sources,
        )
        return await searcher.search(
            Path(image_or_video_path), case_ref, reason, actor, watchlist_ids, gallery, top_k, retention_days
        )
    finally:
        await producer.stop()
        await redis.aclose()
