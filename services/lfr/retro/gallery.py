"""Custody-image galleries for retrospective search, kept apart from live watchlists.

Why a separate collection per gallery (``{milvus.gallery_prefix}<name>``): a gallery of millions of custody
images is searched only retrospectively, for a recorded case; live deployments must never reach it (design:
privacy rule 2). Separate collections make that a property of the storage rather than of a filter, let the
gallery use an index tuned for millions (docs/accuracy.md, "Gallery index"), and let it be dropped whole.

Rows hold a deterministic id (so a re-import replaces rather than duplicates), the subject id (the custody
record the image belongs to: the first folder level under the import root, or the file stem for a flat
folder), the image's path relative to the import root as a reference, the import time and the vector. No
image, thumbnail or name is stored here.

Bulk import is resumable: every batch that Milvus acknowledged is appended to a checkpoint file
(``status<TAB>item``, flushed and fsynced), and ``resume=True`` skips the items listed there, including images
that had no face (recorded as failed so they are not retried forever). Milvus returns squared L2 distances;
they are converted to the card's plain Euclidean distance, as lfr.watchlist.store does.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pymilvus import DataType, MilvusClient

from lfr.core.config import Settings
from lfr.core.ids import derive_id
from lfr.core.images import list_images
from lfr.core.milvus import MilvusConnection, index_pending, wait_indexed
from lfr.vision import FaceAnalyzer, ModelCard
from lfr.vision.photo_embedding import PhotoEmbedder
from lfr.watchlist.store import best_per_key, native_distance

log = logging.getLogger(__name__)

GALLERY_NAME = re.compile(r"^[a-z0-9][a-z0-9_]{0,62}$")
OVERFETCH = 4
MAX_LIMIT = 16_384
INSERT_CHUNK = 2_000  # rows per Milvus insert call: keeps each gRPC/HTTP message well under 64 MB


class GalleryError(RuntimeError):
    """The gallery cannot be used as asked; the message says why."""


def check_gallery_name(name: str) -> str:
    if not GALLERY_NAME.match(name or ""):
        raise GalleryError(
            f"invalid gallery name {name!r}: 1-63 characters, lower-case letters, digits and _, "
            "starting with a letter or digit"
        )
    return name


def subject_for(item: str) -> str:
    """Custody record id for an item path: its first folder, or the file stem for a flat folder."""
    parts = Path(item).parts
    raw = parts[0] if len(parts) > 1 else Path(item).stem
    safe = re.sub(r"[^A-Za-z0-9._:@-]", "_", raw).lstrip("._:@-") or "record"
    return safe[:128]


@dataclass(frozen=True)
class GalleryCandidate:
    subject_id: str
    item_id: str
    distance: float
    score: float


class Gallery:
    """One gallery's Milvus collection. Synchronous: async callers wrap calls in ``asyncio.to_thread``."""

    def __init__(
        self,
        settings: Settings,
        name: str,
        card: ModelCard,
        client: MilvusClient | None = None,
        index_type: str | None = None,
        index_params: dict[str, Any] | None = None,
        search_params: dict[str, Any] | None = None,
        milvus: MilvusConnection | None = None,
    ) -> None:
        """``milvus``: a connection shared with other stores (its owner closes it); without one the gallery
        connects on its own (through ``client`` when given) and ``close`` closes that connection."""
        if not card.dim or card.metric not in ("L2", "COSINE"):
            raise GalleryError(f"model card {card.name} needs dim and an L2 or COSINE metric")
        self.settings = settings
        self.name = check_gallery_name(name)
        self.card = card
        self.dim = int(card.dim)
        self.metric = str(card.metric)
        self.collection = f"{settings.milvus.gallery_prefix}{self.name}"
        self.index_type = index_type or settings.milvus.index_type
        # The settings' build parameters belong to the settings' index type, not to one given here.
        default_params = settings.milvus.index_params if index_type is None else {}
        self.index_params = dict(default_params if index_params is None else index_params)
        self.search_params = dict(settings.milvus.search_params if search_params is None else search_params)
        self.milvus = milvus or MilvusConnection(settings, client)
        self._owns_connection = milvus is None
        self._ready = False

    @property
    def client(self) -> MilvusClient:
        return self.milvus.client

    def close(self) -> None:
        self._ready = False
        if self._owns_connection:
            self.milvus.close()

    def exists(self) -> bool:
        return bool(self.client.has_collection(self.collection))

    def ensure(self, create: bool = True) -> None:
        if self._ready:
            return
        c = self.client
        if c.has_collection(self.collection):
            desc = c.describe_collection(self.collection)
            fields = {f["name"]: f for f in desc.get("fields", [])}
            dim = int(fields.get("vector", {}).get("params", {}).get("dim", 0))
            if "item" not in fields or dim != self.dim:
                raise GalleryError(
                    f"collection {self.collection} is not a gallery for model {self.card.name} "
                    f"({dim}-d vectors, the model makes {self.dim}-d)"
                )
        elif create:
            schema = MilvusClient.create_schema(
                auto_id=False,
                enable_dynamic_field=False,
                description=f"LFR custody gallery {self.name} for model {self.card.model_id}",
            )
            schema.add_field("pk", DataType.VARCHAR, max_length=64, is_primary=True)
            schema.add_field("subject_id", DataType.VARCHAR, max_length=128)
            schema.add_field("item", DataType.VARCHAR, max_length=1024)
            schema.add_field("imported_at", DataType.INT64)
            schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.dim)
            index = c.prepare_index_params()
            index.add_index(
                "vector", index_type=self.index_type, metric_type=self.metric, params=self.index_params
            )
            c.create_collection(
                self.collection, schema=schema, index_params=index, consistency_level="Strong"
            )
            log.info("created gallery collection %s (%s, %s)", self.collection, self.index_type, self.metric)
        else:
            raise GalleryError(
                f"gallery {self.name!r} does not exist: import images with `lfr gallery import`"
            )
        c.load_collection(self.collection)
        self._ready = True

    def upsert(self, subject_ids: Sequence[str], items: Sequence[str], vectors: np.ndarray) -> int:
        """Add or replace rows (id derived from gallery + item); returns the number written."""
        self.ensure()
        vecs = np.asarray(vectors, dtype=np.float32).reshape(len(items), -1)
        if vecs.shape[1] != self.dim:
            raise ValueError(f"vectors have {vecs.shape[1]} values, the gallery needs {self.dim}")
        now = int(time.time())
        for s in range(0, len(items), INSERT_CHUNK):
            rows = [
                {
                    "pk": derive_id("gallery", self.name, items[i]),
                    "subject_id": subject_ids[i],
                    "item": items[i],
                    "imported_at": now,
                    "vector": vecs[i].tolist(),
                }
                for i in range(s, min(s + INSERT_CHUNK, len(items)))
            ]
            self.client.upsert(self.collection, rows)
        return len(items)

    def flush(self) -> None:
        self.ensure()
        self.client.flush(self.collection)

    def count(self) -> int:
        self.ensure(create=False)
        res = self.client.query(self.collection, filter="", output_fields=["count(*)"])
        return int(res[0]["count(*)"]) if res else 0

    def native(self, raw: float) -> float:
        return native_distance(self.metric, raw)

    def search(self, vectors: np.ndarray, top_k: int) -> list[list[GalleryCandidate]]:
        """Closest custody records per probe (best image per record), closest first; no threshold applied."""
        self.ensure(create=False)
        vecs = np.asarray(vectors, dtype=np.float32).reshape(-1, self.dim)
        if len(vecs) == 0:
            return []
        res = self.client.search(
            self.collection,
            data=[v.tolist() for v in vecs],
            limit=min(top_k * OVERFETCH, MAX_LIMIT),
            output_fields=["subject_id", "pk"],
            search_params={"metric_type": self.metric, "params": self.search_params},
            # Bounded (default) answers without waiting for the server's time tick. Records are never
            # deleted one by one (a gallery is dropped whole), so all such a read can miss is a row
            # written a moment before.
            consistency_level=self.settings.milvus.search_consistency,
        )
        out: list[list[GalleryCandidate]] = []
        for hits in res:
            cands = []
            for h in hits:
                ent = h.get("entity", h)
                d = self.native(float(h["distance"]))
                item = str(ent.get("pk", h.get("id", "")))
                cands.append(GalleryCandidate(str(ent["subject_id"]), item, d, float(self.card.to_score(d))))
            out.append(best_per_key(cands, lambda c: c.subject_id, self.metric, top_k))
        return out

    def info(self) -> dict[str, Any]:
        self.ensure(create=False)
        idx = self.client.describe_index(self.collection, "vector") or {}
        return {
            "gallery": self.name,
            "collection": self.collection,
            "rows": self.count(),
            "dim": self.dim,
            "metric": self.metric,
            "model": self.card.model_id,
            "index_type": idx.get("index_type"),
            "index_params": {
                k: v
                for k, v in idx.items()
                if k
                not in (
                    "field_name",
                    "index_name",
                    "metric_type",
                    "index_type",
                    "total_rows",
                    "indexed_rows",
                    "pending_index_rows",
                    "state",
                )
            },
            **{k: idx[k] for k in ("indexed_rows", "pending_index_rows") if k in idx},
        }

    def index_pending(self) -> int | None:
        """Rows the server has not indexed yet (None where the server does not report index progress);
        an import is fully searchable when this is 0 (lfr.core.milvus.index_pending says why)."""
        self.ensure(create=False)
        return index_pending(self.client, self.collection)

    def wait_indexed(self, timeout_s: float, poll_s: float = 1.0) -> bool:
        """Wait until every row is indexed; True when it is (or the server does not report progress)."""
        self.ensure(create=False)
        return wait_indexed(self.client, self.collection, timeout_s, poll_s)

    def drop(self) -> None:
        if self.client.has_collection(self.collection):
            self.client.drop_collection(self.collection)
        self._ready = False


# ---- bulk import --------------------------------------------------------------------------------------


@dataclass
class ImportReport:
    gallery: str
    items: int
    imported: int
    skipped_done: int
    failed_to_enrol: int
    fell_back: int
    below_quality_gate: int
    rows: int
    seconds: float
    checkpoint: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def default_checkpoint(settings: Settings, name: str) -> Path:
    return settings.data_dir / "gallery" / f"{name}.import.checkpoint"


def _read_checkpoint(path: Path, folder: Path) -> dict[str, str]:
    done: dict[str, str] = {}
    with path.open(encoding="utf-8") as fh:
        head = fh.readline().rstrip("\n")
        if head != f"# folder={folder}":
            raise GalleryError(
                f"checkpoint {path} belongs to another import ({head[2:] or 'unknown'}); import that folder "
                "again with --resume, or start this one without --resume"
            )
        for line in fh:
            status, _, item = line.rstrip("\n").partition("\t")
            if item:
                done[item] = status
    return done


def import_folder(
    gallery: Gallery,
    folder: Path,
    analyzer: FaceAnalyzer,
    *,
    resume: bool = False,
    checkpoint: Path | None = None,
    batch_size: int = 64,
    progress: bool = False,
    on_batch: Callable[[int, int], None] | None = None,
) -> ImportReport:
    """Embed every image under ``folder`` (its most likely subject: lfr.vision.face_choice) into the gallery,
    resumably.

    ``on_batch(done, total)`` runs after each acknowledged batch (progress displays; tests interrupt here).
    """
    t0 = time.perf_counter()
    folder = Path(folder).resolve()
    if not folder.is_dir():
        raise GalleryError(f"import folder {folder} does not exist")
    ckpt = checkpoint or default_checkpoint(gallery.settings, gallery.name)
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    done: dict[str, str] = _read_checkpoint(ckpt, folder) if resume and ckpt.exists() else {}
    if not (resume and ckpt.exists()):
        ckpt.write_text(f"# folder={folder}\n", encoding="utf-8")
    items = [p.relative_to(folder).as_posix() for p in list_images(folder)]
    todo = [i for i in items if i not in done]
    gallery.ensure()
    emb = PhotoEmbedder(analyzer, template=True)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(
            total=len(items), initial=len(items) - len(todo), desc=f"import {gallery.name}", unit="img"
        )
    failed = 0
    imported = 0
    with ckpt.open("a", encoding="utf-8") as log_fh:
        for s in range(0, len(todo), batch_size):
            chunk = todo[s : s + batch_size]
            subjects, names, vecs, lines = [], [], [], []
            for item in chunk:
                out = emb.embed_path(folder / item)
                emb.cache.clear()  # each image is visited once: keeping vectors would grow without bound
                if out.vector is None:
                    failed += 1
                    lines.append(f"failed\t{item}\n")
                    continue
                subjects.append(subject_for(item))
                names.append(item)
                vecs.append(out.vector)
                lines.append(f"ok\t{item}\n")
            if names:
                gallery.upsert(subjects, names, np.stack(vecs))
                imported += len(names)
            log_fh.writelines(lines)
            log_fh.flush()
            os.fsync(log_fh.fileno())
            if bar is not None:
                bar.update(len(chunk))
            if on_batch is not None:
                on_batch(len(items) - len(todo) + s + len(chunk), len(items))
    if bar is not None:
        bar.close()
    gallery.flush()
    summary = emb.summary()
    report = ImportReport(
        gallery=gallery.name,
        items=len(items),
        imported=imported,
        skipped_done=len(items) - len(todo),
        failed_to_enrol=failed + sum(1 for st in done.values() if st == "failed"),
        fell_back=summary["fell_back"],
        below_quality_gate=summary["below_quality_gate"],
        rows=gallery.count(),
        seconds=round(time.perf_counter() - t0, 1),
        checkpoint=str(ckpt),
    )
    log.info(
        "gallery import %s: %d imported, %d skipped, %d failed",
        gallery.name,
        imported,
        report.skipped_done,
        report.failed_to_enrol,
    )
    return report


def synthetic_embeddings(real: np.ndarray, n: int, seed: int = 0, shrink: float = 0.1) -> np.ndarray:
    """``n`` vectors drawn from a normal fitted to ``real`` embeddings (covariance shrunk to its diagonal).

    Used to grow test galleries and benchmarks to realistic sizes: the draws have the real embeddings' mean,
    spread and correlation, so their distances to real probes resemble impostor distances. They stand for
    nobody, which is why tests and benchmarks may generate as many as they need.
    """
    x = np.asarray(real, dtype=np.float64)
    if len(x) < 2:
        raise ValueError("need at least two real embeddings to fit the distribution")
    mu = x.mean(axis=0)
    cov = np.cov(x, rowvar=False)
    cov = (1 - shrink) * cov + shrink * np.diag(np.diag(cov))
    rng = np.random.default_rng(seed)
    return rng.multivariate_normal(mu, cov, size=n, method="eigh").astype(np.float32)
