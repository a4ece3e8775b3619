"""WatchlistStore against the real Milvus Lite server of the local stack, with synthetic vectors.

These pin down what was measured rather than assumed: Milvus returns squared L2 (the store reports plain
Euclidean distance), cosine similarity as is, deletes are invisible to search at once, and the
watchlist/expiry filter restricts every search.
"""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest

from lfr.watchlist.store import SubjectMeta, WatchlistStore

from .conftest import VectorCard

pytestmark = pytest.mark.integration


def _meta(sid: str, wl: str, **kw: object) -> SubjectMeta:
    return SubjectMeta(subject_id=sid, watchlist_id=wl, display_name=f"name {sid}", **kw)  # type: ignore[arg-type]


@pytest.fixture
def l2_store(wl_settings):
    store = WatchlistStore(wl_settings, VectorCard())
    yield store
    store.client.drop_collection(store.collection)
    store.close()


def test_l2_distances_are_plain_euclidean_and_filters_apply(l2_store: WatchlistStore) -> None:
    rng = np.random.default_rng(7)
    v = rng.normal(size=(4, 8)).astype(np.float32)
    now = 1_000_000
    l2_store.upsert_subject(_meta("s1", "wl-a"), v[0], "h1", enrolled_at=now)
    l2_store.upsert_subject(_meta("s1", "wl-a"), v[1], "h2", enrolled_at=now)  # second photo of s1
    l2_store.upsert_subject(_meta("s2", "wl-b", category="missing"), v[2], "h3", enrolled_at=now)
    l2_store.upsert_subject(_meta("s3", "wl-a", expires_at=now + 100), v[3], "h4", enrolled_at=now)

    probe = v[0] + 0.05
    [cands] = l2_store.search(probe[None], ["wl-a", "wl-b"], top_k=3, now=now)
    assert cands[0].subject_id == "s1" and cands[0].watchlist_id == "wl-a"
    expected = float(np.linalg.norm(probe - v[0]))
    assert cands[0].distance == pytest.approx(expected, rel=1e-4)  # not its square
    assert cands[0].score == pytest.approx(1 - expected / 2, rel=1e-4)
    assert [c.subject_id for c in cands].count("s1") == 1  # two photos, one slot
    assert {c.subject_id for c in cands} == {"s1", "s2", "s3"}
    assert all(a.distance <= b.distance for a, b in itertools.pairwise(cands))

    [only_b] = l2_store.search(probe[None], ["wl-b"], top_k=3, now=now)
    assert [c.subject_id for c in only_b] == ["s2"] and only_b[0].category == "missing"
    [after_expiry] = l2_store.search(v[3][None], ["wl-a"], top_k=3, now=now + 100)
    assert "s3" not in {c.subject_id for c in after_expiry}
    assert l2_store.count(["wl-a"], now) == 3 and l2_store.count(["wl-a"], now + 100) == 2

    s1 = l2_store.get_subject("wl-a", "s1")
    assert s1 is not None and s1.images == 2 and s1.display_name == "name s1"
    assert [r.subject_id for r in l2_store.list_subjects("wl-a")] == ["s1", "s3"]
    assert l2_store.watchlists() == {"wl-a": 2, "wl-b": 1}


def test_batched_search_returns_one_list_per_probe(l2_store: WatchlistStore) -> None:
    rng = np.random.default_rng(1)
    v = rng.normal(size=(5, 8)).astype(np.float32)
    for i in range(5):
        l2_store.upsert_subject(_meta(f"s{i}", "wl"), v[i], f"h{i}")
    results = l2_store.search(v + 0.01, ["wl"], top_k=2)
    assert [r[0].subject_id for r in results] == [f"s{i}" for i in range(5)]
    assert all(len(r) == 2 for r in results)


def test_delete_is_immediate_and_sweep_removes_expired(l2_store: WatchlistStore) -> None:
    rng = np.random.default_rng(3)
    v = rng.normal(size=(3, 8)).astype(np.float32)
    now = 2_000_000
    l2_store.upsert_subject(_meta("keep", "wl"), v[0], "a")
    l2_store.upsert_subject(_meta("gone", "wl"), v[1], "b")
    l2_store.upsert_subject(_meta("old", "wl", expires_at=now - 1), v[2], "c")
    l2_store.upsert_subject(_meta("old", "wl", expires_at=now - 1), v[2] + 1, "d")

    assert l2_store.delete_subject("wl", "gone") == 1
    [after] = l2_store.search(v[1][None], ["wl"], top_k=5, now=0)
    assert "gone" not in {c.subject_id for c in after}
    assert l2_store.get_subject("wl", "gone") is None
    assert l2_store.delete_subject("wl", "gone") == 0

    assert l2_store.sweep_expired(now) == 2
    assert l2_store.get_subject("wl", "old") is None
    assert l2_store.sweep_expired(now) == 0
    assert l2_store.get_subject("wl", "keep") is not None


def test_update_changes_every_image_of_a_subject(l2_store: WatchlistStore) -> None:
    rng = np.random.default_rng(5)
    v = rng.normal(size=(2, 8)).astype(np.float32)
    l2_store.upsert_subject(_meta("s", "wl"), v[0], "a")
    l2_store.upsert_subject(_meta("s", "wl"), v[1], "b")
    rec = l2_store.update_subject("wl", "s", category="vulnerable", expires_at=5)
    assert rec is not None and rec.category == "vulnerable" and rec.expires_at == 5 and rec.images == 2
    results = l2_store.search(v, ["wl"], top_k=1, now=1)
    assert all(r[0].category == "vulnerable" for r in results)
    assert l2_store.update_subject("wl", "nobody", category="wanted") is None
    with pytest.raises(ValueError, match="cannot change"):
        l2_store.update_subject("wl", "s", vector=[0.0])


def test_cosine_store_reports_similarity(wl_settings) -> None:
    store = WatchlistStore(wl_settings, VectorCard(name="synthetic-cos", metric="COSINE"))
    try:
        a = np.array([1, 0, 0, 0, 0, 0, 0, 0], np.float32)
        b = np.array([1, 1, 0, 0, 0, 0, 0, 0], np.float32)
        store.upsert_subject(_meta("a", "wl"), a, "a")
        store.upsert_subject(_meta("b", "wl"), b, "b")
        [cands] = store.search((a * 3)[None], ["wl"], top_k=2)
        assert [c.subject_id for c in cands] == ["a", "b"]
        assert cands[0].distance == pytest.approx(1.0, abs=1e-5)
        assert cands[1].distance == pytest.approx(1 / np.sqrt(2), abs=1e-5)
    finally:
        store.client.drop_collection(store.collection)
        store.close()


def test_search_latency_on_a_thousand_subjects(l2_store: WatchlistStore, record_property) -> None:
    """Recorded, loosely bounded: the embedder batches, so the batch figure is what matters."""
    rng = np.random.default_rng(11)
    v = rng.normal(size=(1000, 8)).astype(np.float32)
    rows = [l2_store._row(_meta(f"s{i}", f"wl-{i % 4}"), f"p{i}", v[i].tolist(), "", 0) for i in range(1000)]
    l2_store._ensure().upsert(l2_store.collection, rows)
    l2_store.client.flush(l2_store.collection)
    single, batch = [], []
    for i in range(20):
        t = time.perf_counter()
        l2_store.search(v[i][None], ["wl-0", "wl-1"], top_k=3)
        single.append(time.perf_counter() - t)
    for _ in range(5):
        t = time.perf_counter()
        l2_store.search(v[:32], ["wl-0", "wl-1"], top_k=3)
        batch.append(time.perf_counter() - t)
    p50_single, p50_batch = float(np.median(single)) * 1000, float(np.median(batch)) * 1000
    record_property("milvus_single_p50_ms", round(p50_single, 1))
    record_property("milvus_batch32_p50_ms", round(p50_batch, 1))
    print(f"milvus lite search p50: single {p50_single:.1f} ms, batch of 32 {p50_batch:.1f} ms")
    assert p50_batch < 2000
