"""Bootstrap intervals and significance for group differentials, on synthetic searches with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from lfr.evaluation import bootstrap as b
from lfr.evaluation import metrics as m

T = 0.5  # cosine threshold: a search matches when its similarity >= 0.5


Part = tuple[list[float], list[str], list[str], list[float], list[str], list[str]]


def _group(
    name: str, ids: int, per_id: int, miss: float, false_alarm: float, rng: np.random.Generator
) -> Part:
    """``ids`` enrolled people with ``per_id`` mated searches each, and as many not-enrolled people with
    ``per_id`` non-mated searches each. A person either always misses or always matches (probability
    ``miss``), as real people tend to, and a passer-by either always or never raises a false alert."""
    ms: list[float] = []
    ns: list[float] = []
    mid: list[str] = []
    mg: list[str] = []
    nid: list[str] = []
    ng: list[str] = []
    for i in range(ids):
        missed = rng.random() < miss
        for _ in range(per_id):
            ms.append(0.3 if missed else 0.8)
            mid.append(f"{name}-m{i}")
            mg.append(name)
        alarm = rng.random() < false_alarm
        for _ in range(per_id):
            ns.append(0.7 if alarm else 0.2)
            nid.append(f"{name}-n{i}")
            ng.append(name)
    return ms, mid, mg, ns, nid, ng


def _outcomes(*parts: Part) -> m.SearchOutcomes:
    return m.SearchOutcomes(
        np.array([x for p in parts for x in p[0]]),
        np.ones(sum(len(p[0]) for p in parts), dtype=np.int64),
        np.array([x for p in parts for x in p[3]]),
        lower_is_better=False,
        mated_groups=[x for p in parts for x in p[2]],
        nonmated_groups=[x for p in parts for x in p[5]],
        mated_identities=[x for p in parts for x in p[1]],
        nonmated_identities=[x for p in parts for x in p[4]],
    )


def _comparison(r: b.DifferentialReport, rate: str) -> b.Comparison:
    return next(c for c in r.comparisons if c.rate == rate)


def test_clearly_different_groups_are_significant() -> None:
    """FNIR about 0.05 against 0.45 over 150 people each: the interval of the difference excludes 0 and the
    permutation test agrees; FPIR is the same by construction (10 %) and is not called significant."""
    rng = np.random.default_rng(1)
    o = _outcomes(_group("A", 150, 3, 0.05, 0.1, rng), _group("B", 150, 3, 0.45, 0.1, rng))
    r = b.differential_intervals(o, T, rates=(), resamples=500, permutations=500, seed=0)
    fnir = _comparison(r, "fnir")
    assert (fnir.group_a, fnir.group_b) == ("A", "B")
    assert fnir.difference.estimate is not None and fnir.difference.estimate < -0.25
    assert fnir.difference.high is not None and fnir.difference.high < 0
    assert fnir.significant is True
    assert fnir.permutation_p is not None and fnir.permutation_p < 0.01
    by = {g.group: g for g in r.groups}
    assert by["A"].fnir.low is not None and by["A"].fnir.high is not None
    assert by["A"].fnir.low <= by["A"].fnir.estimate <= by["A"].fnir.high  # type: ignore[operator]
    assert by["B"].fnir.low > by["A"].fnir.high  # type: ignore[operator]


def test_identical_groups_are_not_significant() -> None:
    """B is A's searches under other names: the difference is exactly 0, its interval straddles 0, and
    relabelling people never gives a smaller difference (p = 1)."""
    rng = np.random.default_rng(2)
    a = _group("A", 120, 2, 0.2, 0.1, rng)
    b_part: Part = (
        a[0],
        [i.replace("A-", "B-") for i in a[1]],
        ["B"] * len(a[2]),
        a[3],
        [i.replace("A-", "B-") for i in a[4]],
        ["B"] * len(a[5]),
    )
    o = _outcomes(a, b_part)
    r = b.differential_intervals(o, T, rates=(0.1,), resamples=400, permutations=400, seed=0)
    for c in r.comparisons:
        assert c.difference.estimate == pytest.approx(0.0)
        assert c.difference.low is not None and c.difference.high is not None
        assert c.difference.low <= 0.0 <= c.difference.high
        assert c.difference.low < c.difference.high  # a real interval, not a point
        assert c.significant is False
        assert c.permutation_p == pytest.approx(1.0)
    assert {c.rate for c in r.comparisons} == {
        "fnir",
        "fpir",
        "fnir at overall fpir 0.1",
        "fpir at overall fpir 0.1",
    }


def test_point_estimates_match_per_group() -> None:
    """The intervals are centred on the same figures per_group reports, at the card threshold and at the
    threshold giving the whole set each FPIR."""
    rng = np.random.default_rng(3)
    o = _outcomes(_group("A", 80, 2, 0.1, 0.2, rng), _group("B", 60, 3, 0.3, 0.05, rng))
    rates = (0.1, 0.05)
    rows, _ = m.per_group(o, T, rates=rates)
    r = b.differential_intervals(o, T, rates=rates, resamples=50, permutations=0, seed=0)
    by = {g.group: g for g in r.groups}
    for row in rows:
        g = by[row.group]
        assert g.fnir.estimate == pytest.approx(row.fnir)
        assert g.fpir.estimate == pytest.approx(row.fpir)
        for rate in rates:
            label = m.rate_label(rate)
            assert g.fnir_at_overall_fpir[label].estimate == pytest.approx(row.fnir_at_overall_fpir[label])
            assert g.fpir_at_overall_fpir[label].estimate == pytest.approx(row.fpir_at_overall_fpir[label])
    assert by["A"].mated_identities == 80 and by["B"].nonmated_identities == 60


def test_people_are_resampled_not_photos() -> None:
    """Each person's searches all match or all miss. Resampling people sees 100 units and gives a wider
    interval than treating each of the 500 searches as its own person would."""
    rng = np.random.default_rng(4)
    o = _outcomes(_group("A", 100, 5, 0.3, 0.1, rng), _group("B", 100, 5, 0.3, 0.1, rng))
    by_person = b.differential_intervals(o, T, rates=(), resamples=600, permutations=0, seed=0)
    flat = m.SearchOutcomes(
        o.mate_scores, o.mate_ranks, o.nonmated_top, False, o.mated_groups, o.nonmated_groups
    )
    by_search = b.differential_intervals(flat, T, rates=(), resamples=600, permutations=0, seed=0)

    def width(r: b.DifferentialReport) -> float:
        g = r.groups[0].fnir
        assert g.low is not None and g.high is not None
        return g.high - g.low

    assert width(by_person) > 1.7 * width(by_search)


def test_seeded_and_counted() -> None:
    rng = np.random.default_rng(5)
    o = _outcomes(_group("A", 40, 2, 0.2, 0.2, rng), _group("B", 40, 2, 0.4, 0.2, rng))
    r1 = b.differential_intervals(o, T, rates=(0.1,), resamples=200, seed=7).as_dict()
    r2 = b.differential_intervals(o, T, rates=(0.1,), resamples=200, seed=7).as_dict()
    assert r1 == r2
    assert r1["resamples"] == 200 and r1["seed"] == 7 and r1["confidence"] == 0.95
    r3 = b.differential_intervals(o, T, rates=(0.1,), resamples=200, seed=8).as_dict()
    assert r3["comparisons"] != r1["comparisons"]


def test_unlabelled_searches_take_no_part_and_unresolvable_rates_are_left_out() -> None:
    rng = np.random.default_rng(6)
    o = _outcomes(
        _group("A", 20, 1, 0.2, 0.2, rng),
        _group("B", 20, 1, 0.2, 0.2, rng),
        _group("unlabelled", 5, 1, 0, 0, rng),
    )
    r = b.differential_intervals(o, T, rates=(0.01,), resamples=20, seed=0)  # 45 non-mated < 100
    assert {(c.group_a, c.group_b) for c in r.comparisons} == {("A", "B")}
    assert {c.rate for c in r.comparisons} == {"fnir", "fpir"}
    assert "unlabelled" in {g.group for g in r.groups}


def test_bad_arguments_are_refused() -> None:
    o = m.SearchOutcomes(np.array([0.9]), np.array([1]), np.array([0.1]), False)
    with pytest.raises(ValueError, match="group labels"):
        b.differential_intervals(o, T)
    rng = np.random.default_rng(0)
    o = _outcomes(_group("A", 3, 1, 0, 0, rng))
    with pytest.raises(ValueError, match="resamples"):
        b.differential_intervals(o, T, resamples=0)


def test_report_tables_show_intervals_and_verdicts() -> None:
    """The identify report's tables: one row per group with intervals, one per difference with verdict."""
    from lfr.evaluation.identify import _interval_tables

    rng = np.random.default_rng(1)
    o = _outcomes(_group("A", 150, 3, 0.05, 0.1, rng), _group("B", 150, 3, 0.45, 0.1, rng))
    d = b.differential_intervals(o, T, rates=(0.1,), resamples=200, permutations=200, seed=0).as_dict()
    text = "\n".join(_interval_tables(d))
    assert "200 bootstrap resamples over identities (seed 0)" in text
    assert "| FNIR / FPIR at overall FPIR 0.1 |" in text
    fnir_row = next(ln for ln in text.splitlines() if ln.startswith("| FNIR | A - B |"))
    assert fnir_row.endswith("| **yes** | 0.005 |")
    a_row = next(ln for ln in text.splitlines() if ln.startswith("| A |"))
    assert a_row.count("[") == 4  # FNIR, FPIR at the threshold; FNIR / FPIR at FPIR 0.1
