"""The watchlist vector store: one Milvus collection per embedder model, partitioned by watchlist.

Why one collection per model: vectors from different models are not comparable (different dimension,
metric and threshold units), so a model swap creates a fresh collection instead of mixing spaces. Why
``watchlist_id`` is the partition key: every live search is restricted to the watchlists a deployment was
authorised for (design: privacy rule 2), and the partition key lets Milvus prune to those partitions.

Measured on Milvus Lite 3.2.2 / pymilvus 3.0.2 (and documented by Milvus for every deployment type):
``L2`` search results carry the **squared** Euclidean distance, ``COSINE`` results carry the similarity.
Model cards and thresholds use plain Euclidean distance, so :meth:`WatchlistStore.search` takes the square
root. A delete is never alerted on: live searches read at ``Bounded`` consistency and every hit is
confirmed by a ``Strong`` read (:meth:`WatchlistStore.confirm`); we flush as well so the rows are also
gone from the segment files. All methods are synchronous: callers on an event loop wrap them with
``asyncio.to_thread``.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import grpc
import numpy as np
from pydantic import BaseModel, Field, field_validator
from pymilvus import DataType, MilvusClient
from pymilvus.exceptions import MilvusException

from lfr.core.config import Settings
from lfr.core.ids import derive_id
from lfr.core.milvus import MilvusConnection, MilvusUnavailable, is_unavailable
from lfr.watchlist.types import Category, now_s, parse_image_date, validate_id

log = logging.getLogger(__name__)


class _NoLiteMvccWarning(logging.Filter):
    """Milvus Lite has no MVCC timestamps; pymilvus warns on every iterator, harmlessly. Drop just that."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("failed to get mvccTs")


logging.getLogger("pymilvus.client.iterator.query_iterator").addFilter(_NoLiteMvccWarning())

# Milvus returns squared L2 distances (measured on Milvus Lite 3.2.2; Milvus documents the same for
# standalone and distributed), while cards define thresholds on the plain Euclidean distance.
MILVUS_L2_IS_SQUARED = True
# Several images of one subject may fill the top of a result list; fetch extra rows so that after keeping
# the best row per subject there are still ``top_k`` distinct subjects where the watchlist has them.
OVERFETCH = 4


def native_distance(metric: str, raw: float) -> float:
    """Milvus's value -> the card's native units (plain Euclidean distance, or cosine similarity)."""
    if metric == "L2" and MILVUS_L2_IS_SQUARED:
        return float(np.sqrt(max(float(raw), 0.0)))
    return float(raw)


_C = TypeVar("_C", bound="_Ranked")


class _Ranked(Protocol):
    @property
    def distance(self) -> float: ...


def best_per_key(cands: Iterable[_C], key: Callable[[_C], Hashable], metric: str, top_k: int) -> list[_C]:
    """The closest candidate per key (one slot per subject however many photos matched), closest first."""
    closer: Callable[[_C], float] = (lambda c: c.distance) if metric == "L2" else (lambda c: -c.distance)
    best: dict[Hashable, _C] = {}
    for c in cands:
        k = key(c)
        if k not in best or closer(c) < closer(best[k]):
            best[k] = c
    return sorted(best.values(), key=closer)[:top_k]


MAX_LIMIT = 16_384  # Milvus caps limit (topk) at 16384
THUMB_MAX_CHARS = 65_535
META_FIELDS = (
    "pk",
    "subject_id",
    "watchlist_id",
    "category",
    "display_name",
    "source",
    "image_date",
    "expires_at",
    "enrolled_at",
    "thumbnail",
)


class CardLike(Protocol):
    """What the store needs from a model card (lfr.vision.cards.ModelCard satisfies it)."""

    @property
    def name(self) -> str: ...

    @property
    def dim(self) -> int | None: ...

    @property
    def metric(self) -> str | None: ...

    def to_score(self, raw: float) -> float: ...


class StoreError(RuntimeError):
    """The vector store is unreachable or its collection does not fit the model card."""


@dataclass(frozen=True)
class Candidate:
    """A subject close to a probe; ``distance`` is native: Euclidean (L2) or similarity (COSINE)."""

    subject_id: str
    watchlist_id: str
    category: str
    distance: float
    score: float


class SubjectMeta(BaseModel):
    """What is recorded about a watchlist subject besides the vectors. Never logged at INFO."""

    subject_id: str
    watchlist_id: str
    category: Category = Category.WANTED
    display_name: str = Field("", max_length=256)
    source: str = Field(
        "", max_length=256, description="where the image came from, e.g. custody, PNC, family"
    )
    image_date: str = Field("", description="YYYY-MM-DD the photo was taken; empty when unknown")
    expires_at: int = Field(
        0, ge=0, description="epoch seconds after which the entry is not searched; 0 = none"
    )

    @field_validator("subject_id")
    @classmethod
    def _sid(cls, v: str) -> str:
        return validate_id(v, "subject_id")

    @field_validator("watchlist_id")
    @classmethod
    def _wid(cls, v: str) -> str:
        return validate_id(v, "watchlist_id")

    @field_validator("image_date")
    @classmethod
    def _date(cls, v: str) -> str:
        return parse_image_date(v)


class SubjectRecord(SubjectMeta):
    """A subject as stored: its metadata plus how many images (vector rows) it has."""

    enrolled_at: int = 0
    images: int = 0
    image_ids: list[str] = Field(default_factory=list)
    thumbnail: str = Field("", description="base64 JPEG of the aligned face, for the console")


def collection_name(settings: Settings, card_name: str) -> str:
    """Milvus names allow letters, digits and underscores, starting with a letter or underscore."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", f"{settings.milvus.collection_prefix}{card_name}")
    if not re.match(r"^[A-Za-z_]", name):
        name = "_" + name
    return name[:255]


def image_pk(watchlist_id: str, subject_id: str, image_sha256: str) -> str:
    """Deterministic row id: re-enrolling the same photo for the same subject replaces, never duplicates."""
    return derive_id("watchlist-image", watchlist_id, subject_id, image_sha256)


def _quote_all(values: Iterable[str], kind: str) -> str:
    return ", ".join(json.dumps(validate_id(v, kind)) for v in values)


def _deleted_count(result: Any) -> int:
    """pymilvus 3 returns the deleted primary keys; older clients a dict with delete_count."""
    if isinstance(result, dict):
        return int(result.get("delete_count", 0))
    if isinstance(result, list | tuple):
        return len(result)
    return int(getattr(result, "delete_count", 0) or 0)


class WatchlistStore:
    """Milvus access for one embedder model's watchlist vectors and subject metadata."""

    def __init__(
        self,
        settings: Settings,
        card: CardLike,
        client: MilvusClient | None = None,
        milvus: MilvusConnection | None = None,
    ) -> None:
        """``milvus``: a connection shared with other stores (its owner closes it); without one the store
        connects on its own (through ``client`` when given) and ``close`` closes that connection."""
        if not card.dim or card.metric not in ("L2", "COSINE"):
            raise StoreError(f"model card {card.name} needs dim and an L2 or COSINE metric for the watchlist")
        self.settings = settings
        self.card = card
        self.dim = int(card.dim)
        self.metric = str(card.metric)
        self.collection = collection_name(settings, card.name)
        self.milvus = milvus or MilvusConnection(settings, client)
        self._owns_connection = milvus is None
        self._ready = False
        self._lock = threading.Lock()

    # ---- connection and schema ------------------------------------------------------------------------

    @property
    def client(self) -> MilvusClient:
        try:
            return self.milvus.client
        except Exception as exc:  # pymilvus raises several unrelated types for "cannot connect"
            raise StoreError(f"cannot connect to Milvus at {self.settings.milvus_uri}: {exc}") from exc

    def close(self) -> None:
        self._ready = False
        if self._owns_connection:
            self.milvus.close()

    def _drop_channel(self) -> None:
        """After an unreachable-server error: the next call, of this store or any sharing it, reconnects."""
        self._ready = False
        self.milvus.reset()

    def ensure_collection(self) -> None:
        """Create the collection (idempotent) or check that an existing one fits the card."""
        with self._lock:
            if self._ready:
                return
            c = self.client
            if c.has_collection(self.collection):
                self._check_existing()
            else:
                self._create()
            c.load_collection(self.collection)
            self._ready = True

    def _create(self) -> None:
        schema = MilvusClient.create_schema(
            auto_id=False,
            enable_dynamic_field=False,
            description=f"LFR watchlist vectors for model {self.card.name}",
        )
        schema.add_field("pk", DataType.VARCHAR, max_length=64, is_primary=True)
        schema.add_field("subject_id", DataType.VARCHAR, max_length=128)
        schema.add_field("watchlist_id", DataType.VARCHAR, max_length=128, is_partition_key=True)
        schema.add_field("category", DataType.VARCHAR, max_length=32)
        schema.add_field("display_name", DataType.VARCHAR, max_length=1024)
        schema.add_field("source", DataType.VARCHAR, max_length=1024)
        schema.add_field("image_date", DataType.VARCHAR, max_length=16)
        schema.add_field("expires_at", DataType.INT64)
        schema.add_field("enrolled_at", DataType.INT64)
        schema.add_field("thumbnail", DataType.VARCHAR, max_length=THUMB_MAX_CHARS)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.dim)
        index = self.client.prepare_index_params()
        m = self.settings.milvus
        index.add_index(
            "vector", index_type=m.index_type, metric_type=self.metric, params=dict(m.index_params)
        )
        self.client.create_collection(
            self.collection, schema=schema, index_params=index, consistency_level="Strong"
        )
        log.info("created watchlist collection %s (dim %d, %s)", self.collection, self.dim, self.metric)

    def _check_existing(self) -> None:
        desc = self.client.describe_collection(self.collection)
        fields = {f["name"]: f for f in desc.get("fields", [])}
        vec = fields.get("vector")
        if vec is None or "watchlist_id" not in fields:
            raise StoreError(f"collection {self.collection} exists but is not an LFR watchlist collection")
        dim = int(vec.get("params", {}).get("dim", 0))
        if dim != self.dim:
            raise StoreError(
                f"collection {self.collection} holds {dim}-d vectors but model {self.card.name} makes "
                f"{self.dim}-d ones: re-enrol for this model or set milvus.collection_prefix"
            )
        try:
            metric = self.client.describe_index(self.collection, "vector").get("metric_type")
        except Exception:  # no index yet: load_collection would fail next, with Milvus's own message
            metric = None
        if metric and str(metric).upper() != self.metric:
            raise StoreError(
                f"collection {self.collection} is indexed with {metric}, the card says {self.metric}"
            )

    def _ensure(self) -> MilvusClient:
        if not self._ready:
            self.ensure_collection()
        return self.client

    def _erase(self) -> None:
        """After deletes: flush, then ask Milvus to compact so deleted vectors leave the segment files too.

        Milvus deletes are tombstones until compaction; a deleted watchlist image is biometric data that
        must not linger. Compaction runs in the background on Milvus standalone/distributed (Milvus Lite
        accepts the call and completes it at once); a refusal is logged, the delete itself already holds.
        """
        c = self.client
        c.flush(self.collection)
        try:
            c.compact(self.collection)
        except Exception as exc:  # compaction is housekeeping; never fail a delete because of it
            log.warning("compaction request for %s failed: %s", self.collection, exc)

    # ---- writes ---------------------------------------------------------------------------------------

    def _vector(self, vector: np.ndarray) -> list[float]:
        v = np.asarray(vector, dtype=np.float32).reshape(-1)
        if v.shape[0] != self.dim:
            raise ValueError(f"embedding has {v.shape[0]} values, model {self.card.name} needs {self.dim}")
        if not np.all(np.isfinite(v)):
            raise ValueError("embedding holds non-finite values")
        return [float(x) for x in v]

    def upsert_subject(
        self,
        meta: SubjectMeta,
        vector: np.ndarray,
        image_sha256: str,
        thumbnail: str = "",
        enrolled_at: int | None = None,
    ) -> str:
        """Add (or replace) one image of a subject; the subject's other rows take the new metadata.

        Returns the row id. Keeping metadata identical on every row of a subject means any search hit
        reports the same category and expiry, whichever image matched.
        """
        self._ensure()
        if len(thumbnail) > THUMB_MAX_CHARS:
            raise ValueError(f"thumbnail of {len(thumbnail)} characters exceeds {THUMB_MAX_CHARS}")
        when = now_s() if enrolled_at is None else int(enrolled_at)
        pk = image_pk(meta.watchlist_id, meta.subject_id, image_sha256)
        rows = [self._row(meta, pk, self._vector(vector), thumbnail, when)]
        for old in self._rows(meta.watchlist_id, meta.subject_id, with_vectors=True):
            if old["pk"] != pk:
                rows.append(
                    self._row(
                        meta,
                        old["pk"],
                        [float(x) for x in old["vector"]],
                        old["thumbnail"],
                        int(old["enrolled_at"]),
                    )
                )
        self._replace_rows(rows)  # visible to the next search (Strong) and durable in the server's log
        return pk

    def update_subject(self, watchlist_id: str, subject_id: str, **changes: Any) -> SubjectRecord | None:
        """Change metadata (category, display name, source, image date, expiry) on every row of a subject."""
        self._ensure()
        rows = self._rows(watchlist_id, subject_id, with_vectors=True)
        if not rows:
            return None
        allowed = {"category", "display_name", "source", "image_date", "expires_at"}
        unknown = set(changes) - allowed
        if unknown:
            raise ValueError(
                f"cannot change {', '.join(sorted(unknown))}; changeable: {', '.join(sorted(allowed))}"
            )
        base = {k: rows[0][k] for k in SubjectMeta.model_fields}
        meta = SubjectMeta.model_validate({**base, **{k: v for k, v in changes.items() if v is not None}})
        new_rows = [
            self._row(meta, r["pk"], [float(x) for x in r["vector"]], r["thumbnail"], int(r["enrolled_at"]))
            for r in rows
        ]
        self._replace_rows(new_rows)
        return self.get_subject(watchlist_id, subject_id)

    def _replace_rows(self, rows: list[dict[str, Any]]) -> None:
        """Write rows, replacing any with the same ids: delete, then insert (never Milvus's upsert).

        Measured on the Milvus standalone server 2.3.5: ``upsert`` into a collection with a partition key
        stores rows that a search filtered on that key no longer finds (an enrolled face searched with its
        own photo came back as someone else; ``count(*)`` still saw every row), while ``insert`` rows are
        found. Milvus Lite does not show it, so tests/integration/stack runs the store against both. The
        two calls are not atomic: a crash between them leaves the subject without those images, which the
        caller sees as a failed enrolment to repeat.
        """
        c = self._ensure()
        c.delete(self.collection, ids=[r["pk"] for r in rows])
        c.insert(self.collection, rows)

    @staticmethod
    def _row(
        meta: SubjectMeta, pk: str, vector: list[float], thumbnail: str, enrolled_at: int
    ) -> dict[str, Any]:
        return {
            "pk": pk,
            "subject_id": meta.subject_id,
            "watchlist_id": meta.watchlist_id,
            "category": str(meta.category),
            "display_name": meta.display_name,
            "source": meta.source,
            "image_date": meta.image_date,
            "expires_at": int(meta.expires_at),
            "enrolled_at": enrolled_at,
            "thumbnail": thumbnail,
            "vector": vector,
        }

    def delete_subject(self, watchlist_id: str, subject_id: str) -> int:
        """Delete every image of the subject from this watchlist; searches stop finding it at once."""
        c = self._ensure()
        pks = [r["pk"] for r in self._rows(watchlist_id, subject_id)]
        if not pks:
            return 0
        deleted = _deleted_count(c.delete(self.collection, ids=pks))
        self._erase()
        return max(deleted, len(pks)) if deleted else len(pks)

    def delete_image(self, pk: str) -> int:
        """Delete one row by id (used to undo an enrolment whose audit record could not be written)."""
        c = self._ensure()
        deleted = _deleted_count(c.delete(self.collection, ids=[validate_id(pk, "image id")]))
        self._erase()
        return deleted

    def sweep_expired(self, now: int | None = None) -> int:
        """Delete every row whose expiry has passed; returns the number of rows (images) deleted."""
        c = self._ensure()
        t = now_s() if now is None else int(now)
        expr = f"expires_at > 0 and expires_at <= {t}"
        pks = [r["pk"] for r in self._query(expr, ["pk"])]
        if not pks:
            return 0
        deleted = 0
        for start in range(0, len(pks), 1000):
            chunk = pks[start : start + 1000]
            deleted += _deleted_count(c.delete(self.collection, ids=chunk)) or len(chunk)
        self._erase()
        return deleted

    # ---- reads ----------------------------------------------------------------------------------------

    def _query(self, expr: str, fields: Sequence[str], batch: int = 1000) -> list[dict[str, Any]]:
        """All rows matching ``expr`` (iterates, so results are not capped at Milvus's 16384 limit)."""
        c = self._ensure()
        it = c.query_iterator(self.collection, batch_size=batch, filter=expr, output_fields=list(fields))
        out: list[dict[str, Any]] = []
        try:
            while True:
                page = it.next()
                if not page:
                    break
                out.extend(dict(r) for r in page)
        finally:
            it.close()
        return out

    def _rows(self, watchlist_id: str, subject_id: str, with_vectors: bool = False) -> list[dict[str, Any]]:
        expr = (
            f"watchlist_id == {json.dumps(validate_id(watchlist_id, 'watchlist_id'))} and "
            f"subject_id == {json.dumps(validate_id(subject_id, 'subject_id'))}"
        )
        fields = [*META_FIELDS, "vector"] if with_vectors else list(META_FIELDS)
        rows = self._ensure().query(self.collection, filter=expr, output_fields=fields, limit=MAX_LIMIT)
        return [dict(r) for r in rows]

    @staticmethod
    def _group(rows: Iterable[dict[str, Any]], thumbnails: bool) -> list[SubjectRecord]:
        by_subject: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for r in rows:
            by_subject.setdefault((r["watchlist_id"], r["subject_id"]), []).append(r)
        out = []
        for _key, rs in sorted(by_subject.items()):
            rs.sort(key=lambda r: (int(r["enrolled_at"]), r["pk"]))
            first = rs[-1]  # the newest image represents the subject
            out.append(
                SubjectRecord(
                    subject_id=first["subject_id"],
                    watchlist_id=first["watchlist_id"],
                    category=first["category"],
                    display_name=first["display_name"],
                    source=first["source"],
                    image_date=first["image_date"],
                    expires_at=int(first["expires_at"]),
                    enrolled_at=min(int(r["enrolled_at"]) for r in rs),
                    images=len(rs),
                    image_ids=[r["pk"] for r in rs],
                    thumbnail=first.get("thumbnail", "") if thumbnails else "",
                )
            )
        return out

    def get_subject(self, watchlist_id: str, subject_id: str) -> SubjectRecord | None:
        found = self._group(self._rows(watchlist_id, subject_id), thumbnails=True)
        return found[0] if found else None

    def list_subjects(self, watchlist_id: str, thumbnails: bool = False) -> list[SubjectRecord]:
        """Every subject of a watchlist (expired ones included until swept), sorted by subject id."""
        expr = f"watchlist_id == {json.dumps(validate_id(watchlist_id, 'watchlist_id'))}"
        fields = [f for f in META_FIELDS if thumbnails or f != "thumbnail"]
        return self._group(self._query(expr, fields), thumbnails)

    def watchlists(self) -> dict[str, int]:
        """Watchlist id -> number of subjects, over the whole collection (reads every row's ids)."""
        subjects: dict[str, set[str]] = {}
        for r in self._query('pk != ""', ["watchlist_id", "subject_id"]):
            subjects.setdefault(r["watchlist_id"], set()).add(r["subject_id"])
        return {w: len(s) for w, s in sorted(subjects.items())}

    def count(self, watchlist_ids: Sequence[str], now: int | None = None) -> int:
        """Rows (images) a search over these watchlists would compare a probe with at ``now``."""
        if not watchlist_ids:
            return 0
        c = self._ensure()
        res = c.query(
            self.collection, filter=self._search_filter(watchlist_ids, now), output_fields=["count(*)"]
        )
        return int(res[0]["count(*)"]) if res else 0

    def _search_filter(self, watchlist_ids: Sequence[str], now: int | None) -> str:
        t = now_s() if now is None else int(now)
        wl = _quote_all(dict.fromkeys(watchlist_ids), "watchlist_id")
        return f"watchlist_id in [{wl}] and (expires_at == 0 or expires_at > {t})"

    def native_distance(self, raw: float) -> float:
        return native_distance(self.metric, raw)

    @contextmanager
    def _live_call(self) -> Iterator[None]:
        """Turns an unreachable server into MilvusUnavailable (the stage retries the batch) and drops the
        broken channel, so the next call reconnects."""
        try:
            yield
        except (StoreError, MilvusException, grpc.RpcError) as exc:
            if isinstance(exc, StoreError) or is_unavailable(exc):
                self._drop_channel()
                raise MilvusUnavailable(
                    f"Milvus at {self.settings.milvus_uri} is unavailable: {exc}"
                ) from exc
            raise

    def confirm(
        self, candidates: Sequence[Candidate], watchlist_ids: Sequence[str], now: int | None = None
    ) -> list[Candidate]:
        """The candidates whose subject the latest state still holds, unexpired, in these watchlists.

        Why: live searches read at ``Bounded`` consistency by default (``milvus.search_consistency``), so
        the searches that match nobody, nearly all of them, never wait for a Milvus server's time tick
        (p50 about 40 ms at ``Strong``, 3 ms at ``Bounded``; docs/performance.md). Such a search can still
        return a subject deleted or moved a moment before. Only candidates that clear a threshold reach
        here, and a ``Strong`` read of their (watchlist, subject) rows drops any that are gone, so a
        removed subject is never alerted on. With ``Strong`` searches the candidates are returned as they
        are, without a call.
        """
        if not candidates or self.settings.milvus.search_consistency == "Strong":
            return list(candidates)
        subjects = _quote_all(dict.fromkeys(c.subject_id for c in candidates), "subject_id")
        with self._live_call():
            rows = self._ensure().query(
                self.collection,
                filter=f"{self._search_filter(watchlist_ids, now)} and subject_id in [{subjects}]",
                output_fields=["watchlist_id", "subject_id"],
                limit=MAX_LIMIT,
                consistency_level="Strong",
            )
        held = {(r["watchlist_id"], r["subject_id"]) for r in rows}
        return [c for c in candidates if (c.watchlist_id, c.subject_id) in held]

    def search(
        self,
        vectors: np.ndarray,
        watchlist_ids: Sequence[str],
        top_k: int,
        now: int | None = None,
    ) -> list[list[Candidate]]:
        """Closest subjects per probe, restricted to ``watchlist_ids`` and unexpired entries; one Milvus call.

        Each inner list is ordered closest first and holds at most one candidate per (watchlist, subject),
        so a subject enrolled with several photos takes one slot. No threshold is applied here: the caller
        applies the deployment's threshold, so the store never decides what counts as a match.
        """
        vecs = np.asarray(vectors, dtype=np.float32)
        if vecs.ndim == 1:
            vecs = vecs[None, :]
        if vecs.ndim != 2 or vecs.shape[1] != self.dim:
            raise ValueError(f"expected vectors of shape (N, {self.dim}), got {vecs.shape}")
        if top_k < 1:
            raise ValueError("top_k must be at least 1")
        if vecs.shape[0] == 0:
            return []
        if not watchlist_ids:
            return [[] for _ in range(vecs.shape[0])]
        limit = min(top_k * OVERFETCH, MAX_LIMIT)
        params = {"metric_type": self.metric, "params": dict(self.settings.milvus.search_params)}
        with self._live_call():
            results = self._ensure().search(
                self.collection,
                data=[row.tolist() for row in vecs],
                limit=limit,
                filter=self._search_filter(watchlist_ids, now),
                output_fields=["subject_id", "watchlist_id", "category"],
                search_params=params,
                # Bounded (default) answers at once; hits are then confirmed by `confirm` (Strong).
                consistency_level=self.settings.milvus.search_consistency,
            )
        out: list[list[Candidate]] = []
        for hits in results:
            cands = []
            for hit in hits:
                ent = hit.get("entity", hit)
                dist = self.native_distance(float(hit["distance"]))
                score = float(self.card.to_score(dist))
                cands.append(Candidate(ent["subject_id"], ent["watchlist_id"], ent["category"], dist, score))
            out.append(best_per_key(cands, lambda c: (c.watchlist_id, c.subject_id), self.metric, top_k))
        return out
