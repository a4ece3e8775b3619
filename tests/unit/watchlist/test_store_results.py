"""WatchlistStore's handling of Milvus results, with a recording fake client (real Milvus: integration)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from lfr.core.config import load_settings
from lfr.watchlist.store import OVERFETCH, WatchlistStore, collection_name

from .conftest import COSINE, FakeCard


class FakeClient:
    def __init__(self, results: list[list[dict[str, Any]]]) -> None:
        self.results = results
        self.calls: list[dict[str, Any]] = []

    def has_collection(self, name: str) -> bool:
        return True

    def describe_collection(self, name: str) -> dict[str, Any]:
        return {"fields": [{"name": "watchlist_id"}, {"name": "vector", "params": {"dim": 4}}]}

    def describe_index(self, name: str, field: str) -> dict[str, Any]:
        return {"metric_type": "L2"}

    def load_collection(self, name: str) -> None:
        pass

    def search(self, collection: str, **kw: Any) -> list[list[dict[str, Any]]]:
        self.calls.append(kw)
        return self.results


def _hit(subject: str, distance: float, wl: str = "wl-a") -> dict[str, Any]:
    return {
        "pk": f"{subject}-{distance}",
        "distance": distance,
        "entity": {"subject_id": subject, "watchlist_id": wl, "category": "wanted"},
    }


def test_collection_names_are_milvus_safe() -> None:
    s = load_settings()
    assert collection_name(s, "dlib-resnet-v1") == "lfr_watchlist_dlib_resnet_v1"
    s2 = load_settings(milvus={"collection_prefix": "9x-"})
    assert collection_name(s2, "a.b") == "_9x_a_b"


def test_l2_distances_are_square_rooted_deduplicated_and_sorted() -> None:
    client = FakeClient([[_hit("s1", 0.16), _hit("s1", 0.25), _hit("s2", 0.09), _hit("s3", 1.0)], []])
    store = WatchlistStore(load_settings(), FakeCard(), client=client)  # type: ignore[arg-type]
    out = store.search(np.zeros((2, 4), np.float32), ["wl-a", "wl-b", "wl-a"], top_k=2, now=1000)
    assert [(c.subject_id, round(c.distance, 6)) for c in out[0]] == [("s2", 0.3), ("s1", 0.4)]
    assert out[0][0].score == pytest.approx(1 - 0.3 / 2)
    assert out[1] == []
    call = client.calls[0]
    assert call["limit"] == 2 * OVERFETCH and len(call["data"]) == 2
    assert call["filter"] == 'watchlist_id in ["wl-a", "wl-b"] and (expires_at == 0 or expires_at > 1000)'
    assert call["search_params"]["metric_type"] == "L2"


def test_cosine_similarities_are_kept_and_sorted_descending() -> None:
    client = FakeClient([[_hit("a", 0.2), _hit("b", 0.9), _hit("b", 0.5)]])
    client.describe_index = lambda *a: {"metric_type": "COSINE"}  # type: ignore[method-assign]
    store = WatchlistStore(load_settings(), COSINE, client=client)  # type: ignore[arg-type]
    out = store.search(np.ones((1, 4), np.float32), ["wl-a"], top_k=5)
    assert [(c.subject_id, c.distance) for c in out[0]] == [("b", 0.9), ("a", 0.2)]


def test_search_guards() -> None:
    client = FakeClient([])
    store = WatchlistStore(load_settings(), FakeCard(), client=client)  # type: ignore[arg-type]
    assert store.search(np.zeros((3, 4), np.float32), [], top_k=3) == [[], [], []]
    assert client.calls == []  # no watchlists = nothing to search, not "search everything"
    with pytest.raises(ValueError, match="shape"):
        store.search(np.zeros((1, 5), np.float32), ["wl"], top_k=1)
    with pytest.raises(ValueError, match="invalid watchlist_id"):
        store.search(np.zeros((1, 4), np.float32), ['wl"] or true or ["'], top_k=1)


def test_dimension_mismatch_with_an_existing_collection_is_refused() -> None:
    from lfr.watchlist.store import StoreError

    client = FakeClient([])
    store = WatchlistStore(load_settings(), FakeCard(dim=8), client=client)  # type: ignore[arg-type]
    with pytest.raises(StoreError, match="4-d vectors"):
        store.ensure_collection()
