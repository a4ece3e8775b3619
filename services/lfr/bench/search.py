"""Search benchmarks: watchlist search latency at 10,000 subjects, and gallery index options at scale.

``run_search_bench`` fills a throw-away watchlist with real face embeddings (when a face folder is given or
found) topped up with synthetic ones drawn from the real embeddings' distribution, then times searches
through :class:`lfr.watchlist.store.WatchlistStore`, the code path the embedder uses live. Rows are written
in bulk through the store's own client and schema (its one-subject-at-a-time ``upsert_subject`` checks
existing rows and flushes on every call, which suits enrolment, not loading 10,000 subjects), and the
benchmark watchlist is deleted afterwards.

``run_index_bench`` builds a gallery collection per index option on the same vectors and reports build
time, query latency and recall@k against exact numpy search (docs/accuracy.md, "Gallery index").
"""

from __future__ import annotations

import contextlib
import logging
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from pymilvus import MilvusClient

from lfr.core.config import ConfigError, Settings
from lfr.core.ids import new_id
from lfr.core.images import list_images
from lfr.core.milvus import make_milvus, wait_indexed
from lfr.evaluation.metrics import score_matrix
from lfr.retro.gallery import Gallery, synthetic_embeddings
from lfr.vision import FaceAnalyzer, ModelCard
from lfr.vision.photo_embedding import PhotoEmbedder

log = logging.getLogger(__name__)


def real_embeddings(analyzer: FaceAnalyzer, folder: Path | None, limit: int, seed: int = 0) -> np.ndarray:
    """Embeddings of up to ``limit`` images under ``folder`` (seeded choice); empty when no folder."""
    if folder is None or not Path(folder).is_dir():
        return np.zeros((0, analyzer.embedder.card.dim or 0), dtype=np.float32)
    imgs = list_images(Path(folder))
    rng = np.random.default_rng(seed)
    if len(imgs) > limit:
        imgs = [imgs[i] for i in np.sort(rng.choice(len(imgs), size=limit, replace=False))]
    emb = PhotoEmbedder(analyzer)
    vecs = [v for v in (emb.embed_path(p).vector for p in imgs) if v is not None]
    dim = analyzer.embedder.card.dim or 0
    return np.stack(vecs) if vecs else np.zeros((0, dim), dtype=np.float32)


def record_of(path: Path, root: Path) -> str:
    """The record (person) an image belongs to: its first folder under ``root``, else its file stem."""
    rel = path.relative_to(root)
    return rel.parts[0] if len(rel.parts) > 1 else path.stem


def real_embeddings_by_record(
    analyzer: FaceAnalyzer, folder: Path | None, limit: int, per_record: int = 4, seed: int = 0
) -> tuple[np.ndarray, list[str]]:
    """Up to ``limit`` embeddings, whole records at a time (at most ``per_record`` images each), with their
    record ids: records with several images give probes whose mates are in the gallery (mated recall)."""
    dim = analyzer.embedder.card.dim or 0
    if folder is None or not Path(folder).is_dir():
        return np.zeros((0, dim), dtype=np.float32), []
    root = Path(folder)
    groups: dict[str, list[Path]] = {}
    for img in list_images(root):
        groups.setdefault(record_of(img, root), []).append(img)
    rng = np.random.default_rng(seed)
    order = [sorted(groups)[i] for i in rng.permutation(len(groups))]
    chosen: list[tuple[str, Path]] = []
    taken: Counter[str] = Counter()
    for cap in (per_record, None):  # whole records first; then the rest of them when there are few records
        for rec in order:
            more = [(rec, p) for p in groups[rec][taken[rec] : cap]][: max(0, limit - len(chosen))]
            chosen += more
            taken[rec] += len(more)
    emb = PhotoEmbedder(analyzer)
    kept = [(rec, v) for rec, p in chosen if (v := emb.embed_path(p).vector) is not None]
    if not kept:
        return np.zeros((0, dim), dtype=np.float32), []
    return np.stack([v for _, v in kept]), [rec for rec, _ in kept]


def split_probes(records: list[str], queries: int) -> tuple[list[int], list[int]]:
    """``queries`` probe rows (at most all rows) and the gallery rows (all the others).

    Probes are chosen so that as many as possible have mates in the gallery: first one image of each record
    with several, then records with one image, then further images of records that keep one in the gallery,
    then whatever is left.
    """
    left: dict[str, int] = {}
    for r in records:
        left[r] = left.get(r, 0) + 1
    probes: list[int] = []
    taken: set[int] = set()

    def take(i: int) -> None:
        probes.append(i)
        taken.add(i)
        left[records[i]] -= 1

    firsts: set[str] = set()
    for i, r in enumerate(records):  # one image of each record that has another
        if len(probes) < queries and left[r] > 1 and r not in firsts:
            firsts.add(r)
            take(i)
    for rule in (lambda r: left[r] == 1 and r not in firsts, lambda r: left[r] > 1, lambda r: True):
        for i, r in enumerate(records):
            if len(probes) < queries and i not in taken and rule(r):
                take(i)
    return probes, [i for i in range(len(records)) if i not in taken]


def fill_vectors(real: np.ndarray, n: int, dim: int, seed: int = 0) -> np.ndarray:
    """``real`` topped up to ``n`` rows with synthetic draws (pure noise when fewer than 2 real rows)."""
    if len(real) >= n:
        return real[:n].astype(np.float32)
    need = n - len(real)
    if len(real) >= 2:
        extra = synthetic_embeddings(real, need, seed)
    else:
        extra = np.random.default_rng(seed).normal(0, 0.1, size=(need, dim)).astype(np.float32)
    return np.concatenate([real.astype(np.float32), extra])


CONFIRM_QUERIES = 50  # confirmation reads timed per bench (a hit pays one; a non-match none)


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def _milvus_client(settings: Settings) -> tuple[MilvusClient, str, contextlib.ExitStack]:
    """The configured Milvus, else a temporary Milvus Lite file (no stack needed to benchmark)."""
    stack = contextlib.ExitStack()
    try:
        uri = settings.milvus_uri
    except ConfigError:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="lfr-bench-")))
        uri = str(tmp / "bench.db")
    client = make_milvus(settings, uri)
    stack.callback(client.close)
    return client, uri, stack


def run_search_bench(
    settings: Settings,
    subjects: int = 10_000,
    faces_dir: Path | None = None,
    real_max: int = 500,
    queries: int = 200,
    batches: int = 10,
    top_k: int = 5,
    seed: int = 0,
    analyzer: FaceAnalyzer | None = None,
) -> dict[str, Any]:
    from lfr.watchlist.store import WatchlistStore

    analyzer = analyzer or FaceAnalyzer(settings)
    card: ModelCard = analyzer.embedder.card
    dim = int(card.dim or 0)
    real = real_embeddings(analyzer, faces_dir, real_max, seed)
    vecs = fill_vectors(real, subjects, dim, seed)
    client, uri, stack = _milvus_client(settings)
    with stack:
        store = WatchlistStore(settings, card, client=client)
        store.ensure_collection()
        wl = f"bench-{new_id()[:12]}"
        t0 = time.perf_counter()
        rows = [
            {
                "pk": f"{wl}-{i}",
                "subject_id": f"s{i:06d}",
                "watchlist_id": wl,
                "category": "other",
                "display_name": "",
                "source": "benchmark",
                "image_date": "",
                "expires_at": 0,
                "enrolled_at": 0,
                "thumbnail": "",
                "vector": vecs[i].tolist(),
            }
            for i in range(subjects)
        ]
        for s in range(0, subjects, 2000):
            client.insert(store.collection, rows[s : s + 2000])
        client.flush(store.collection)
        load_s = time.perf_counter() - t0
        # Rows not yet indexed are searched through the server's interim index: measure the built one.
        if not wait_indexed(client, store.collection, INDEX_WAIT_S):
            raise RuntimeError(f"watchlist index not built within {INDEX_WAIT_S:.0f} s")
        index_s = time.perf_counter() - t0
        rng = np.random.default_rng(seed + 1)
        source = rng.choice(subjects, size=queries + 64 * batches, replace=True)
        probes = vecs[source]
        probes = probes + rng.normal(0, 0.02, size=probes.shape).astype(np.float32)
        try:
            store.search(probes[:1], [wl], top_k)  # warm-up (loads the collection)
            single, best = [], []
            for q in probes[:queries]:
                t = time.perf_counter()
                [cands] = store.search(q[None, :], [wl], top_k)
                single.append((time.perf_counter() - t) * 1000)
                best.append(cands)
            batch = []
            for b in range(batches):
                chunk = probes[queries + 64 * b : queries + 64 * (b + 1)]
                t = time.perf_counter()
                store.search(chunk, [wl], top_k)
                batch.append((time.perf_counter() - t) * 1000)
            # The read a hit pays before it is raised (lfr.watchlist.store.confirm); a non-match never does.
            confirm = []
            for cands in best[:CONFIRM_QUERIES]:  # the closest candidate of a search already made
                t = time.perf_counter()
                store.confirm(cands[:1], [wl])
                confirm.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            exact = score_matrix(probes[:queries], vecs, card.metric or "L2")
            numpy_ms = (time.perf_counter() - t) * 1000 / queries
            # Recall against exact search: every subject has one row, so rows and subjects coincide.
            order = np.argsort(exact if card.metric == "L2" else -exact, axis=1)[:, :top_k]
            found = sum(
                len({f"s{j:06d}" for j in row} & {c.subject_id for c in cands})
                for row, cands in zip(order, best, strict=True)
            )
            # The probe's own subject, the one an alert is about (the rest are strangers at near-tie scores).
            mated = sum(
                f"s{j:06d}" in {c.subject_id for c in cands}
                for j, cands in zip(source[:queries], best, strict=True)
            )
        finally:
            client.delete(store.collection, filter=f'watchlist_id == "{wl}"')
            client.flush(store.collection)
    return {
        "subjects": subjects,
        "real_faces": len(real),
        "synthetic": int(subjects - min(len(real), subjects)),
        "dim": dim,
        "metric": card.metric,
        "top_k": top_k,
        "store": "lfr.watchlist.store.WatchlistStore",
        "milvus": "configured" if uri.startswith("http") else "milvus-lite file (no stack running)",
        "index_type": settings.milvus.index_type,
        "load_s": round(load_s, 2),
        "load_and_index_s": round(index_s, 2),
        "queries": queries,
        f"recall_at_{top_k}": round(found / (top_k * queries), 4),
        f"mated_recall_at_{top_k}": round(mated / queries, 4),
        "p50_ms": round(statistics.median(single), 2),
        "p99_ms": round(_percentile(single, 99), 2),
        "batch64_p50_ms": round(statistics.median(batch), 2),
        "batch64_per_query_ms": round(statistics.median(batch) / 64, 3),
        "numpy_bruteforce_per_query_ms": round(numpy_ms, 3),
        "search_consistency": settings.milvus.search_consistency,
        "hit_confirm_p50_ms": round(statistics.median(confirm), 2),
        "hit_confirm_p99_ms": round(_percentile(confirm, 99), 2),
    }


INDEX_OPTIONS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("FLAT", {}, {}),
    ("IVF_FLAT", {"nlist": 1024}, {"nprobe": 16}),
    ("IVF_FLAT", {"nlist": 1024}, {"nprobe": 64}),
    ("HNSW", {"M": 16, "efConstruction": 200}, {"ef": 64}),
    ("HNSW", {"M": 16, "efConstruction": 200}, {"ef": 128}),
]


def run_index_bench(
    settings: Settings,
    vectors: np.ndarray,
    card: ModelCard,
    queries: np.ndarray,
    top_k: int = 10,
    options: list[tuple[str, dict[str, Any], dict[str, Any]]] | None = None,
    mates: list[set[int]] | None = None,
) -> list[dict[str, Any]]:
    """Build time, latency and recall@k of each index option on the same gallery vectors.

    ``mates[i]`` are the gallery rows of query ``i``'s own person. Recall@k against exact search counts
    every row of the exact top k, and on face embeddings most of those are strangers whose scores differ in
    the third decimal (an index that swaps them loses nothing an investigator would see); the mated recall
    counts only the query's own person among the exact top k, which is what a search must not lose.
    """
    exact = score_matrix(queries, vectors, card.metric or "L2")
    order = np.argsort(exact if card.metric == "L2" else -exact, axis=1)[:, :top_k]
    truth = [set(f"i{j}" for j in row) for row in order]
    mated_truth = [
        {f"i{j}" for j in row if j in (mates[qi] if mates is not None and qi < len(mates) else ())}
        for qi, row in enumerate(order)
    ]
    client, _, stack = _milvus_client(settings)
    out = []
    built: dict[str, tuple[Gallery, float]] = {}
    with stack, contextlib.ExitStack() as cleanup:  # bench collections go even when a build fails
        for itype, iparams, sparams in options or INDEX_OPTIONS:
            key = f"{itype}{sorted(iparams.items())}"
            if key not in built:
                name = f"bench_{itype.lower()}_{new_id()[:8]}"
                g = Gallery(settings, name, card, client=client, index_type=itype, index_params=iparams)
                cleanup.callback(g.drop)
                t = time.perf_counter()
                for s in range(0, len(vectors), 20_000):
                    n = min(20_000, len(vectors) - s)
                    g.upsert(
                        [f"s{j}" for j in range(s, s + n)],
                        [f"i{j}" for j in range(s, s + n)],
                        vectors[s : s + n],
                    )
                g.flush()
                # Rows not yet indexed are searched through the server's interim index (on growing
                # segments, few probes): measuring before the build ends would measure that index instead.
                if not g.wait_indexed(INDEX_WAIT_S):
                    raise RuntimeError(f"{itype} index not built within {INDEX_WAIT_S:.0f} s")
                g.client.release_collection(g.collection)  # serve the indexed segments, not their handoff
                g.client.load_collection(g.collection)
                built[key] = (g, time.perf_counter() - t)
            g, build_s = built[key]
            g.search_params = dict(sparams)
            g.search(queries[:1], top_k)
            lat, hits, mated_hits = [], 0, 0
            for qi, q in enumerate(queries):
                t = time.perf_counter()
                res = g.client.search(
                    g.collection,
                    data=[q.tolist()],
                    limit=top_k,
                    output_fields=["item"],
                    search_params={"metric_type": g.metric, "params": g.search_params},
                    consistency_level=settings.milvus.search_consistency,
                )
                lat.append((time.perf_counter() - t) * 1000)
                found = {h.get("entity", h)["item"] for h in res[0]}
                hits += len(truth[qi] & found)
                mated_hits += len(mated_truth[qi] & found)
            mated_total = sum(len(m) for m in mated_truth)
            out.append(
                {
                    "index_type": itype,
                    "index_params": iparams,
                    "search_params": sparams,
                    "rows": len(vectors),
                    "build_and_load_s": round(build_s, 1),
                    "p50_ms": round(statistics.median(lat), 2),
                    "p99_ms": round(_percentile(lat, 99), 2),
                    f"recall_at_{top_k}": round(hits / (top_k * len(queries)), 4),
                    "mated_in_exact_top_k": mated_total,
                    f"mated_recall_at_{top_k}": round(mated_hits / mated_total, 4) if mated_total else None,
                    "search_consistency": settings.milvus.search_consistency,
                }
            )
    return out


def parse_index_options(specs: list[str]) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """Every ``--index`` value, each one option or a comma-separated list (``FLAT,IVF_FLAT,HNSW``)."""
    return [parse_index_option(one) for spec in specs for one in spec.split(",") if one.strip()]


INDEX_WAIT_S = 3600.0  # a 1,000,000-row HNSW build on two busy cores took minutes

SEARCH_KEYS = frozenset({"nprobe", "ef"})  # index parameters that belong to search, not to building


def parse_index_option(spec: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """``TYPE[:key=value...]`` -> (index type, build params, search params).

    Build keys (nlist, M, efConstruction) and search keys (nprobe, ef) are told apart by name, so one
    string names one row of the comparison: ``IVF_FLAT:nlist=1024:nprobe=64``, ``HNSW:M=16:ef=128``.
    """
    itype, *pairs = spec.split(":")
    itype = itype.strip().upper()
    if itype not in {"FLAT", "IVF_FLAT", "IVF_SQ8", "IVF_PQ", "HNSW"}:
        raise ValueError(
            f"index type {itype or '(empty)'} is not one of FLAT, IVF_FLAT, IVF_SQ8, IVF_PQ, HNSW"
        )
    build: dict[str, Any] = {}
    search: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip() or not value.strip().isdigit():
            raise ValueError(f"{pair!r} in {spec!r} is not key=whole number")
        (search if key in SEARCH_KEYS else build)[key.strip()] = int(value)
    return itype, build, search


def run_gallery_bench(
    settings: Settings,
    vectors: int = 200_000,
    faces_dir: Path | None = None,
    real_max: int = 500,
    queries: int = 100,
    top_k: int = 10,
    options: list[tuple[str, dict[str, Any], dict[str, Any]]] | None = None,
    seed: int = 0,
    analyzer: FaceAnalyzer | None = None,
) -> dict[str, Any]:
    """The gallery index comparison behind ``lfr bench gallery``: real faces topped up with synthetic ones.

    Probes are real embeddings held out of the gallery when there are enough (``queries`` of them), so
    recall is measured on faces, not on noise; otherwise synthetic probes are drawn from the same fit.
    """
    analyzer = analyzer or FaceAnalyzer(settings)
    card: ModelCard = analyzer.embedder.card
    dim = int(card.dim or 0)
    real, records = real_embeddings_by_record(analyzer, faces_dir, real_max + queries, seed=seed)
    mates: list[set[int]] | None = None
    if len(real) >= queries + 2:
        probe_rows, gallery_rows = split_probes(records, queries)
        probes, real = real[probe_rows], real[gallery_rows]
        rows_of: dict[str, set[int]] = {}
        for g, i in enumerate(gallery_rows):
            rows_of.setdefault(records[i], set()).add(g)
        mates = [rows_of.get(records[i], set()) for i in probe_rows]
        probe_kind = "real faces not in the gallery (their other images are)"
    else:
        probes = fill_vectors(real, len(real) + queries, dim, seed + 7)[len(real) :]
        probe_kind = "synthetic"
    gallery = fill_vectors(real, vectors, dim, seed)
    t = time.perf_counter()
    score_matrix(probes, gallery, card.metric or "L2")
    numpy_ms = (time.perf_counter() - t) * 1000 / max(1, len(probes))
    rows = run_index_bench(settings, gallery, card, probes, top_k, options, mates)
    return {
        "rows": vectors,
        "real_faces": int(min(len(real), vectors)),
        "synthetic": int(vectors - min(len(real), vectors)),
        "dim": dim,
        "metric": card.metric,
        "queries": len(probes),
        "probes": probe_kind,
        "mated_probes": sum(1 for m in mates if m) if mates is not None else 0,
        "top_k": top_k,
        "numpy_exact_per_query_ms": round(numpy_ms, 3),
        "indexes": rows,
    }
