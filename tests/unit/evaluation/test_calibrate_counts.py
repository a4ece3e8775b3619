"""The calibration's comparison counts against a brute-force loop, and the quality-gate split."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from lfr.evaluation.calibrate_card import (
    MIN_MATCHES,
    comparison_counts,
    gate_split,
    impostor_counts,
    passage_counts,
)
from lfr.evaluation.tracks import cut_tracks
from lfr.vision.fusion import running_fusions

THRESHOLDS = [-0.2, 0.0, 0.2, 0.5]


def _set(seed: int = 0, n: int = 40) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(8, 6))
    owners = rng.integers(0, 8, size=n)
    return centres[owners] + 0.8 * rng.normal(size=(n, 6)), owners


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.mark.parametrize("same_owner", [False, True])
def test_comparison_counts_equal_a_loop_over_ordered_pairs(same_owner: bool) -> None:
    v, owners = _set()
    probes, templates = np.arange(0, 30), np.arange(10, 40)  # overlapping sets
    n, counts = comparison_counts(v, owners, probes, templates, "COSINE", THRESHOLDS, same_owner=same_owner)
    pairs = [(i, j) for i in probes for j in templates if i != j and (owners[i] == owners[j]) == same_owner]
    assert n == len(pairs) > 0
    assert counts == [sum(_cos(v[i], v[j]) >= t for i, j in pairs) for t in THRESHOLDS]


def test_comparison_counts_for_a_distance_metric_count_below_the_threshold() -> None:
    v, owners = _set(1)
    idx = np.arange(len(v))
    n, counts = comparison_counts(v, owners, idx, idx, "L2", [2.0, 3.0], same_owner=False)
    d = [np.linalg.norm(v[i] - v[j]) for i, j in itertools.permutations(idx, 2) if owners[i] != owners[j]]
    assert n == len(d) and counts == [sum(x <= 2.0 for x in d), sum(x <= 3.0 for x in d)]
    # Every unordered impostor pair once each way: the rates equal the calibration's own.
    n_pairs, once = impostor_counts(v, owners, "L2", [2.0, 3.0])
    assert n == 2 * n_pairs and counts == [2 * c for c in once]


def test_gate_split_compares_each_verdict_with_the_photos_that_passed() -> None:
    v, owners = _set(2, 60)
    passed = np.zeros(len(v), dtype=bool)
    passed[:45] = True
    out = gate_split(v, owners, passed, "COSINE", THRESHOLDS)
    assert out["passed"]["probes"] == 45 and out["failed"]["probes"] == 15
    for verdict, probes in (("passed", np.arange(45)), ("failed", np.arange(45, 60))):
        pair = (v, owners, probes, np.arange(45), "COSINE", THRESHOLDS)
        n_imp, imp = comparison_counts(*pair, same_owner=False)
        n_gen, gen = comparison_counts(*pair, same_owner=True)
        row = out[verdict]
        assert row["impostor_comparisons"] == n_imp and row["genuine_comparisons"] == n_gen
        for t, c, g in zip(THRESHOLDS, imp, gen, strict=True):
            key = f"{t:g}"
            assert row["fmr"][key] == (pytest.approx(c / n_imp, rel=1e-3) if c >= MIN_MATCHES else None)
            assert row["genuine_match_rate"][key] == pytest.approx(g / n_gen, abs=1e-4)


def test_gate_split_with_no_failed_probes_reports_none_rather_than_dividing_by_zero() -> None:
    v, owners = _set(3)
    out = gate_split(v, owners, np.ones(len(v), dtype=bool), "COSINE", THRESHOLDS)
    assert out["failed"]["probes"] == 0 and out["failed"]["impostor_comparisons"] == 0
    assert set(out["failed"]["fmr"].values()) == {None}
    assert set(out["failed"]["genuine_match_rate"].values()) == {None}


@pytest.mark.parametrize("metric,thresholds", [("COSINE", THRESHOLDS), ("L2", [2.0, 3.0])])
def test_passage_counts_equal_a_loop_over_tracks_and_other_peoples_photos(
    metric: str, thresholds: list[float]
) -> None:
    v, owners = _set(2, n=60)
    weights = np.linspace(0.5, 1.0, len(v)).astype(np.float32)
    n_tracks, n, counts = passage_counts(
        v, owners, weights, metric, thresholds, track_len=3, draws=2, seed=0, min_similarity=0.3
    )
    by_id: dict[str, list[int]] = {}
    for i, o in enumerate(owners.tolist()):
        by_id.setdefault(str(o), []).append(i)
    tracks = cut_tracks(by_id, 3, 2, 0)
    assert n_tracks == len(tracks)
    best: list[float] = []
    for _, idx in tracks:
        searches = running_fusions(v[idx], weights[idx], metric, 0.3)
        for j in range(len(v)):
            if owners[j] == owners[idx[0]]:
                continue
            if metric == "COSINE":
                best.append(max(_cos(s, v[j]) for s in searches))
            else:
                best.append(min(float(np.linalg.norm(s - v[j])) for s in searches))
    assert n == len(best) > 0
    if metric == "COSINE":
        assert counts == [sum(b >= t for b in best) for t in thresholds]
    else:
        assert counts == [sum(b <= t for b in best) for t in thresholds]


def test_a_passage_of_one_search_is_the_rate_per_search() -> None:
    v, owners = _set(3, n=60)
    _, n, counts = passage_counts(
        v, owners, np.ones(len(v)), "COSINE", THRESHOLDS, track_len=1, draws=1, seed=0, min_similarity=0.3
    )
    pairs, per_pair = impostor_counts(v, owners, "COSINE", THRESHOLDS)
    # Each unordered impostor pair is two ordered (passage, photo) comparisons.
    assert n == 2 * pairs
    assert counts == [2 * c for c in per_pair]


def test_passage_counts_refuse_an_empty_track() -> None:
    v, owners = _set()
    with pytest.raises(ValueError, match="track_len"):
        passage_counts(
            v,
            owners,
            np.ones(len(v)),
            "COSINE",
            THRESHOLDS,
            track_len=0,
            draws=1,
            seed=0,
            min_similarity=None,
        )


def test_passages_against_a_separate_gallery_count_only_other_peoples_entries() -> None:
    v, owners = _set(4, n=30)
    g, g_owners = _set(5, n=25)
    weights = np.ones(len(v), np.float32)
    _, n, counts = passage_counts(
        v,
        owners,
        weights,
        "COSINE",
        THRESHOLDS,
        track_len=2,
        draws=1,
        seed=0,
        min_similarity=None,
        gallery=g,
        gallery_owners=g_owners,
    )
    by_id: dict[str, list[int]] = {}
    for i, o in enumerate(owners.tolist()):
        by_id.setdefault(str(o), []).append(i)
    best = [
        max(_cos(s, g[j]) for s in running_fusions(v[idx], weights[idx], "COSINE", None))
        for _, idx in cut_tracks(by_id, 2, 1, 0)
        for j in range(len(g))
        if g_owners[j] != owners[idx[0]]
    ]
    assert n == len(best) > 0
    assert counts == [sum(b >= t for b in best) for t in THRESHOLDS]
