"""The watchlist and gallery stores against both Milvus servers the stack can run: Milvus Lite and the Milvus
standalone server (the production code path: server-side index building, index parameters, token auth).

Each test checks answers against an exact numpy search over the same vectors, so an index that returned
the wrong subject, or a filter that leaked another watchlist, fails the test.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pymilvus import MilvusClient

from lfr.core.config import Settings
from lfr.retro.gallery import Gallery
from lfr.watchlist.store import StoreError, SubjectMeta, WatchlistStore

from .conftest import MilvusProcess

pytestmark = pytest.mark.integration

DIM = 32
ROWS = 3000  # above the server's 1,024-row threshold, so a sealed segment gets the real index
WATCHLISTS = [f"wl-{i}" for i in range(4)]
DEPLOYMENT_WATCHLISTS = ["wl-0", "wl-1"]  # what one deployment was authorised for
# (build parameters, search parameters) per production index type
INDEXES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "HNSW": ({"M": 16, "efConstruction": 64}, {"ef": 64}),
    "IVF_FLAT": ({"nlist": 16}, {"nprobe": 16}),
    "IVF_SQ8": ({"nlist": 16}, {"nprobe": 16}),
}


@dataclass(frozen=True)
class Card:
    name: str = "synthetic-l2-32"
    model_id: str = "synthetic-l2-32@test"
    metric: str = "L2"
    dim: int = DIM

    def to_score(self, raw: float) -> float:
        return float(np.clip(1.0 - raw / 2.0, 0.0, 1.0))


def with_milvus(settings: Settings, **changes: Any) -> Settings:
    data = settings.model_dump()
    data["milvus"].update(changes)
    return Settings(**data)


def _vectors(n: int, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _fill(store: WatchlistStore, vecs: np.ndarray) -> None:
    rows = [
        store._row(
            SubjectMeta(subject_id=f"s{i}", watchlist_id=WATCHLISTS[i % 4]), f"p{i}", vecs[i].tolist(), "", 0
        )
        for i in range(len(vecs))
    ]
    for start in range(0, len(rows), 1000):
        store._replace_rows(rows[start : start + 1000])  # the store's own write path
    store.client.flush(store.collection)


def _wait_indexed(
    client: MilvusClient, collection: str, rows: int, timeout_s: float = 60.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        desc = dict(client.describe_index(collection, "vector"))
        if int(desc.get("indexed_rows", 0)) >= rows or time.monotonic() > deadline:
            return desc
        time.sleep(0.5)


@pytest.mark.parametrize("index_type", list(INDEXES))
def test_watchlist_search_on_a_production_index(milvus_backend: Settings, index_type: str) -> None:
    build, search = INDEXES[index_type]
    settings = with_milvus(milvus_backend, index_type=index_type, index_params=build, search_params=search)
    store = WatchlistStore(settings, Card())
    try:
        vecs = _vectors(ROWS, seed=3)
        _fill(store, vecs)
        desc = _wait_indexed(store.client, store.collection, ROWS)
        assert str(desc["index_type"]) == index_type
        if settings.milvus.token:  # the standalone server
            # The server built the index from the parameters given (Milvus Lite accepts and ignores them).
            assert int(desc["indexed_rows"]) == ROWS, desc
            assert {k: str(v) for k, v in build.items()}.items() <= {
                k: str(v) for k, v in desc.items()
            }.items()

        allowed = np.array([WATCHLISTS[i % 4] in DEPLOYMENT_WATCHLISTS for i in range(ROWS)])
        probes_idx = np.arange(0, 400, 7)  # every watchlist, authorised or not
        probes = vecs[probes_idx] + np.random.default_rng(5).normal(0, 0.01, (len(probes_idx), DIM))
        results = store.search(probes.astype(np.float32), DEPLOYMENT_WATCHLISTS, top_k=3, now=1)
        exact = np.linalg.norm(vecs[None, :, :] - probes[:, None, :], axis=2)
        exact[:, ~allowed] = np.inf  # the deployment may only see its own watchlists
        agree = 0
        for cands, dists, i in zip(results, exact, probes_idx, strict=True):
            assert cands, "every probe has candidates in the deployment's watchlists"
            assert {c.watchlist_id for c in cands} <= set(DEPLOYMENT_WATCHLISTS), "filter leaked"
            agree += cands[0].subject_id == f"s{int(np.argmin(dists))}"
            if allowed[i]:
                assert cands[0].subject_id == f"s{i}", "an enrolled face is found first"
                assert cands[0].distance == pytest.approx(float(dists[i]), abs=0.02)
        # Probes from other watchlists are far from every allowed row: the hard case for an approximate
        # index. With nprobe = nlist the server's IVF is exhaustive; Milvus Lite ignores the parameters.
        floor = 0.95 if settings.milvus.token else 0.8
        assert agree / len(probes_idx) >= floor, (
            f"top-1 agreement with exact search {agree}/{len(probes_idx)}"
        )

        assert store.delete_subject("wl-0", "s0") == 1
        [after] = store.search(vecs[0][None], DEPLOYMENT_WATCHLISTS, top_k=3, now=1)
        # A Bounded search may read a moment behind the delete; the confirmation read never does.
        assert "s0" not in {c.subject_id for c in store.confirm(after, DEPLOYMENT_WATCHLISTS, now=1)}
    finally:
        store.client.drop_collection(store.collection)
        store.close()


@pytest.mark.parametrize("consistency", ["Bounded", "Strong"])
def test_a_subject_deleted_after_the_search_never_alerts(milvus_backend: Settings, consistency: str) -> None:
    """The live path's guarantee at either consistency: a hit is raised only on a subject still listed.

    Another process (the API) deletes and shortens; the searching store is told nothing and its
    candidates were read before the writes. ``confirm`` is the read the embedder makes before a hit.
    """
    settings = with_milvus(milvus_backend, search_consistency=consistency)
    store, api = WatchlistStore(settings, Card()), WatchlistStore(settings, Card())
    try:
        vecs = _vectors(12, seed=21)
        for i in range(12):
            wl = "wl-0" if i < 8 else "wl-2"  # wl-2: not the deployment's
            expires = 0 if i != 3 else 2_000_000_000
            store.upsert_subject(
                SubjectMeta(subject_id=f"s{i}", watchlist_id=wl, expires_at=expires), vecs[i], f"{i:064x}"
            )
        [found] = store.search(vecs[1][None] * 0.5 + vecs[2][None] * 0.5, ["wl-0"], top_k=8, now=1)
        assert {c.subject_id for c in found} == {f"s{i}" for i in range(8)}
        assert store.confirm(found, ["wl-0"], now=1) == found, "nothing changed: every candidate holds"

        assert api.delete_subject("wl-0", "s1") == 1
        kept = store.confirm(found, ["wl-0"], now=1)
        if consistency == "Strong":
            # Strong searches already read the latest state: candidates pass through, and the next
            # search no longer finds the deleted subject.
            assert kept == found
            [again] = store.search(vecs[1][None], ["wl-0"], top_k=8, now=1)
            assert "s1" not in {c.subject_id for c in again}
        else:
            assert [c.subject_id for c in kept] == [c.subject_id for c in found if c.subject_id != "s1"]
            assert [c.score for c in kept] == [c.score for c in found if c.subject_id != "s1"]
            # Expired by the time of the confirmation read, and a watchlist the deployment lacks.
            later = store.confirm(found, ["wl-0"], now=2_000_000_001)
            assert "s3" not in {c.subject_id for c in later} and len(later) == 6
            assert store.confirm(found, ["wl-2"], now=1) == []
    finally:
        store.client.drop_collection(store.collection)
        store.close()
        api.close()


@pytest.mark.parametrize("index_type", ["IVF_SQ8", "HNSW"])
def test_gallery_on_a_production_index(milvus_backend: Settings, index_type: str) -> None:
    build, search = INDEXES[index_type]
    g = Gallery(milvus_backend, f"t{index_type.lower()}", Card(), index_type=index_type, index_params=build)
    g.search_params = dict(search)
    try:
        vecs = _vectors(2000, seed=9)
        items = [f"rec{i // 2}/img{i % 2}.jpg" for i in range(len(vecs))]
        g.upsert([f"rec{i // 2}" for i in range(len(vecs))], items, vecs)
        g.flush()
        assert g.count() == len(vecs)
        assert g.wait_indexed(120), "every row indexed"
        desc = dict(g.client.describe_index(g.collection, "vector"))
        info = g.info()
        assert info["index_type"] == index_type == desc["index_type"]
        # Both report index progress: nothing pending once wait_indexed returned.
        assert g.index_pending() == 0 and info["pending_index_rows"] == 0
        assert info["indexed_rows"] == int(desc["indexed_rows"]) >= len(vecs)
        probes = vecs[::50] + 0.01
        for i, cands in zip(
            range(0, len(vecs), 50), g.search(probes.astype(np.float32), top_k=5), strict=True
        ):
            assert cands[0].subject_id == f"rec{i // 2}"
            assert len({c.subject_id for c in cands}) == len(cands), "one slot per custody record"
    finally:
        g.drop()
        g.close()


def test_standalone_server_refuses_calls_without_the_token(
    standalone_milvus: MilvusProcess, settings_for
) -> None:
    base = dict(uri=standalone_milvus.uri, collection_prefix="auth_")
    for token in (None, "root:not-the-password"):
        store = WatchlistStore(settings_for(milvus={**base, "token": token}), Card())
        with pytest.raises(StoreError, match="cannot connect"):
            store.ensure_collection()
    store = WatchlistStore(settings_for(milvus={**base, "token": standalone_milvus.token}), Card())
    try:
        store.ensure_collection()
        assert store.count(["wl-0"]) == 0
    finally:
        store.client.drop_collection(store.collection)
        store.close()


@pytest.mark.parametrize("kind", ["lite", pytest.param("standalone", marks=pytest.mark.long)])
def test_watchlist_survives_a_server_kill_and_restart(
    kind: str, request, settings_for, tmp_path: Path, record_property
) -> None:  # type: ignore[no-untyped-def]
    """SIGKILL, not a clean stop: what a crash or an out-of-memory kill does to the server."""
    if kind == "standalone":
        server: MilvusProcess = request.getfixturevalue("standalone_milvus")  # the session's, restarted
    else:
        server = MilvusProcess("lite", tmp_path / "milvus")
        server.start()
    settings = settings_for(
        milvus={"uri": server.uri, "token": server.token, "collection_prefix": "restart_"}
    )
    vecs = _vectors(20, seed=13)
    store = WatchlistStore(settings, Card())
    try:
        for i in range(20):  # no flush: the server's write-ahead log must carry them over the kill
            store.upsert_subject(SubjectMeta(subject_id=f"s{i}", watchlist_id="wl-r"), vecs[i], f"{i:064x}")
        store.close()
        server.kill()
        restart_s = server.start()
        record_property(f"milvus_{kind}_restart_s", round(restart_s, 1))
        print(f"milvus {kind}: restarted after SIGKILL in {restart_s:.1f}s")
        again = WatchlistStore(settings, Card())
        try:
            assert again.count(["wl-r"]) == 20
            [cands] = again.search(vecs[7][None], ["wl-r"], top_k=1)
            assert cands[0].subject_id == "s7"
            assert again.get_subject("wl-r", "s7") is not None
        finally:
            again.client.drop_collection(again.collection)
            again.close()
    finally:
        store.close()
        if kind == "lite":
            server.kill()
            shutil.rmtree(tmp_path / "milvus", ignore_errors=True)
