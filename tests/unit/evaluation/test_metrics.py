"""The accuracy figures against small cases worked out by hand (the arithmetic is in each docstring)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lfr.evaluation import metrics as m

# Verification example (Euclidean distances: lower = closer; a pair matches when d <= threshold).
GENUINE = [0.2, 0.4, 0.7]
IMPOSTOR = [0.5, 0.9, 1.0, 1.2]


def test_rates_at_threshold_by_hand() -> None:
    """At 0.6: genuine 0.2 and 0.4 pass (TAR 2/3); impostor 0.5 passes (FAR 1/4); correct = 2 + 3 of 7."""
    r = m.rates_at(GENUINE, IMPOSTOR, 0.6, lower_is_better=True)
    assert r.tar == pytest.approx(2 / 3)
    assert r.far == pytest.approx(1 / 4)
    assert r.accuracy == pytest.approx(5 / 7)
    assert (r.true_accepts, r.false_accepts) == (2, 1)


def test_threshold_is_inclusive_like_the_model_card() -> None:
    """A distance equal to the threshold matches (ModelCard.is_match: raw <= t for L2)."""
    assert m.rates_at([0.6], [0.6], 0.6, lower_is_better=True).tar == 1.0
    assert m.rates_at([0.6], [0.6], 0.6, lower_is_better=True).far == 1.0


def test_roc_curve_by_hand() -> None:
    """Distinct distances 0.2 0.4 0.5 0.7 0.9 1.0 1.2 give these (FAR, TAR) steps, after (0, 0)."""
    c = m.roc_curve(GENUINE, IMPOSTOR, lower_is_better=True)
    assert c.thresholds[0] == -math.inf  # admits nothing: distance <= -inf
    assert np.allclose(c.thresholds[1:], [0.2, 0.4, 0.5, 0.7, 0.9, 1.0, 1.2])
    assert np.allclose(c.x, [0, 0, 0, 0.25, 0.25, 0.5, 0.75, 1.0])
    assert np.allclose(c.y, [0, 1 / 3, 2 / 3, 2 / 3, 1, 1, 1, 1])


def test_best_threshold_by_hand() -> None:
    """Accepting d <= 0.45 gets 2 genuine + 4 impostors right (6/7), as does d <= 0.8 (3 + 3); every other
    cut gets 5/7 or less. The strictest best run is the single midpoint 0.45."""
    b = m.best_threshold(GENUINE, IMPOSTOR, lower_is_better=True)
    assert b.threshold == pytest.approx(0.45)
    assert b.accuracy == pytest.approx(6 / 7)


def test_tar_at_far_resolvable_by_hand() -> None:
    """FAR 1/4 with 4 impostors allows 1 false match: the cut sits between the 2nd closest impostor (0.9)
    and the next closer score (0.7), i.e. 0.8, where all 3 genuine pairs pass."""
    p = m.tar_at_far(GENUINE, IMPOSTOR, 0.25, lower_is_better=True)
    assert p is not None
    assert p.threshold == pytest.approx(0.8)
    assert p.true_rate == 1.0 and p.false_rate == 0.25


def test_tar_at_far_unresolved_with_too_few_impostors() -> None:
    """FAR 0.1 needs at least 10 impostor pairs; 4 cannot resolve it, so the answer is None, not TAR@0."""
    assert m.tar_at_far(GENUINE, IMPOSTOR, 0.1, lower_is_better=True) is None
    assert m.resolvable(1000, 1e-3) and not m.resolvable(999, 1e-3)
    assert m.resolvable(6000, 1 / 6000) and not m.resolvable(5999, 1 / 6000)


def test_similarity_metric_orientation() -> None:
    """Cosine similarities: higher = closer; the same example mirrored (s = 1 - d) gives the same rates."""
    g = [1 - d for d in GENUINE]
    i = [1 - d for d in IMPOSTOR]
    r = m.rates_at(g, i, 1 - 0.6, lower_is_better=False)
    assert (r.tar, r.far) == pytest.approx((2 / 3, 1 / 4))
    p = m.tar_at_far(g, i, 0.25, lower_is_better=False)
    assert p is not None and p.threshold == pytest.approx(0.2) and p.true_rate == 1.0


def test_failed_pairs_count_as_rejections() -> None:
    """A genuine pair without a face (NaN) is a false reject, never dropped: TAR 2/4, not 2/3."""
    r = m.rates_at([*GENUINE, math.nan], IMPOSTOR, 0.6, lower_is_better=True)
    assert r.tar == pytest.approx(2 / 4)
    assert r.genuine == 4


def test_equal_error_rate_by_hand() -> None:
    """At d <= 0.5: FAR 1/4, FRR 1/3 is the closest crossing; EER = their mean = 7/24."""
    assert m.equal_error_rate(GENUINE, IMPOSTOR, lower_is_better=True) == pytest.approx(7 / 24)


def test_cross_validated_accuracy_uses_held_out_folds() -> None:
    """Fold 1's threshold comes from fold 2 and vice versa, so a fold never picks its own threshold."""
    g, gf = [0.2, 0.3, 0.5, 0.55], [1, 1, 2, 2]
    i, if_ = [0.4, 0.9, 0.8, 1.0], [1, 1, 2, 2]
    # Fold 2 alone is separated best at 0.675 -> on fold 1: genuine 0.2, 0.3 pass, impostor 0.4 passes: 3/4.
    # Fold 1 alone is best at 0.25 (first run of 3/4) -> on fold 2: nothing passes: 2/4. Mean 5/8.
    assert m.cross_validated_accuracy(g, i, gf, if_, lower_is_better=True) == pytest.approx(5 / 8)
    assert m.cross_validated_accuracy(g, i, [1] * 4, [1] * 4, lower_is_better=True) is None


# Identification example: 4 mated searches (score, rank of the mate) and 4 non-mated top scores.
MATE_SCORES = np.array([0.3, 0.5, 0.7, math.nan])  # the last probe had no face
MATE_RANKS = np.array([1, 1, 2, 0])
NONMATED_TOP = np.array([0.55, 0.8, 0.9, math.nan])


def _outcomes() -> m.SearchOutcomes:
    return m.SearchOutcomes(
        MATE_SCORES,
        MATE_RANKS,
        NONMATED_TOP,
        lower_is_better=True,
        mated_groups=["A", "A", "B", "B"],
        nonmated_groups=["A", "B", "B", "A"],
    )


def test_open_set_rates_by_hand() -> None:
    """At 0.6: mates 0.3 and 0.5 are rank 1 and pass (TPIR 2/4; the rank-2 mate and the failed probe
    miss); non-mated 0.55 alerts (FPIR 1/4; the failed probe alerts nobody); rank-1 rate 2/4."""
    o = _outcomes()
    assert m.tpir_at(o, 0.6) == pytest.approx(0.5)
    assert m.fpir_at(o, 0.6) == pytest.approx(0.25)
    assert m.rank1_rate(o) == pytest.approx(0.5)
    assert m.tpir_at(o, 0.75, rank=2) == pytest.approx(0.75)  # the rank-2 mate counts at rank <= 2


def test_fnir_at_fpir_by_hand() -> None:
    """FPIR 1/4 of 4 non-mated searches allows 1 alert: cut between 0.8 and 0.55 -> 0.675; the rank-1 mates
    0.3 and 0.5 pass, so FNIR = 2/4. FPIR 0.1 needs 10 non-mated searches: unresolved."""
    o = _outcomes()
    p = m.fnir_at_fpir(o, 0.25)
    assert p is not None
    assert p.threshold == pytest.approx(0.675)
    assert 1 - p.true_rate == pytest.approx(0.5)
    assert m.fnir_at_fpir(o, 0.1) is None


def test_per_group_and_largest_differential_by_hand() -> None:
    """Group A: both mates found (FNIR 0), one of its two non-mated searches alerts (FPIR 1/2).
    Group B: no mate found (FNIR 1), no alert (FPIR 0). Gaps: FNIR 1 (B over A), FPIR 0.5 (A over B)."""
    rows, diffs = m.per_group(_outcomes(), 0.6)
    by = {r.group: r for r in rows}
    assert (by["A"].fnir, by["A"].fpir) == (0.0, 0.5)
    assert (by["B"].fnir, by["B"].fpir) == (1.0, 0.0)
    fnir, fpir = diffs
    assert (fnir.highest_group, fnir.lowest_group, fnir.difference, fnir.ratio) == ("B", "A", 1.0, None)
    assert (fpir.highest_group, fpir.difference) == ("A", 0.5)


def test_unlabelled_group_is_listed_but_not_compared() -> None:
    o = m.SearchOutcomes(
        MATE_SCORES,
        MATE_RANKS,
        NONMATED_TOP,
        True,
        mated_groups=["A", "A", "unlabelled", "unlabelled"],
        nonmated_groups=["A", "A", "unlabelled", "unlabelled"],
    )
    rows, diffs = m.per_group(o, 0.6)
    assert {r.group for r in rows} == {"A", "unlabelled"}
    assert diffs[0].groups_compared == ["A"] and diffs[0].difference is None


def test_score_matrix_matches_direct_formulas() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(5, 8)), rng.normal(size=(7, 8))
    l2 = m.score_matrix(a, b, "L2", chunk=2)
    assert np.allclose(l2, np.linalg.norm(a[:, None] - b[None], axis=2))
    cos = m.score_matrix(a, b, "COSINE")
    na, nb = a / np.linalg.norm(a, axis=1, keepdims=True), b / np.linalg.norm(b, axis=1, keepdims=True)
    assert np.allclose(cos, na @ nb.T)
    with pytest.raises(ValueError):
        m.score_matrix(a, b, "IP")


def test_rate_labels_and_json_cleaning() -> None:
    assert [m.rate_label(r) for r in m.FPIR_POINTS] == ["0.02", "0.01", "0.003", "0.001", "1/6000"]
    assert m.clean_json({"a": math.nan, "b": [np.float64(1.5), math.inf]}) == {"a": None, "b": [1.5, None]}


def _two_groups() -> m.SearchOutcomes:
    """Similarity scores, every mate at rank 1: 4 mated and 10 non-mated searches in each of A and B."""
    mates = np.array([0.9, 0.8, 0.7, 0.6, 0.9, 0.8, 0.7, 0.6])
    non_a = [0.75, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05, 0.04, 0.03, 0.02]
    non_b = [0.95, 0.85, 0.3, 0.2, 0.1, 0.05, 0.04, 0.03, 0.02, 0.01]
    return m.SearchOutcomes(
        mates,
        np.ones(8, dtype=int),
        np.array(non_a + non_b),
        lower_is_better=False,
        mated_groups=["A"] * 4 + ["B"] * 4,
        nonmated_groups=["A"] * 10 + ["B"] * 10,
    )


def test_fnir_at_fpir_per_group_and_at_the_overall_threshold_by_hand() -> None:
    """Similarity scores (higher is closer), every mate at rank 1, 10 non-mated searches per group.

    FPIR 0.1 within A allows one of A's alerts (0.75): cut midway 0.5..0.6 = 0.55, all four A mates pass,
    FNIR 0. Within B it allows 0.95: cut 0.85..0.9 = 0.875, only 0.9 passes, FNIR 0.75. Over all 20 it
    allows two (0.95, 0.85): cut 0.75..0.8 = 0.775, where A and B each find two mates (FNIR 0.5) and B's
    0.95 and 0.85 alert (FPIR 2/10) while A's do not. FPIR 0.05 needs 20 searches: unresolved per group,
    resolved overall (cut 0.875: FNIR 0.75 for both, FPIR 0.1 for B)."""
    rows, diffs = m.per_group(_two_groups(), 0.65, rates=(0.1, 0.05))
    by = {r.group: r.as_dict() for r in rows}
    assert by["A"]["fnir_at_fpir"] == {"0.1": 0.0, "0.05": None}
    assert by["B"]["fnir_at_fpir"] == {"0.1": 0.75, "0.05": None}
    assert by["A"]["unresolved"] == by["B"]["unresolved"] == ["0.05"], "10 searches cannot resolve 1/20"
    assert by["A"]["fnir_at_overall_fpir"] == {"0.1": 0.5, "0.05": 0.75}
    assert by["B"]["fnir_at_overall_fpir"] == {"0.1": 0.5, "0.05": 0.75}
    assert by["A"]["fpir_at_overall_fpir"] == {"0.1": 0.0, "0.05": 0.0}
    assert by["B"]["fpir_at_overall_fpir"] == {"0.1": pytest.approx(0.2), "0.05": pytest.approx(0.1)}
    gaps = {d.rate: d for d in diffs}
    own = gaps["fnir at fpir 0.1"]
    assert (own.highest_group, own.lowest_group, own.difference) == ("B", "A", 0.75)
    assert gaps["fnir at fpir 0.05"].difference is None, "unresolved in every group"
    assert gaps["fnir at overall fpir 0.1"].difference == 0.0
    deployed = gaps["fpir at overall fpir 0.1"]
    assert (deployed.highest_group, deployed.difference) == ("B", pytest.approx(0.2))


def test_group_report_tabulates_fnir_at_each_fpir_and_the_differentials() -> None:
    """The Markdown report of the case above: own / overall-threshold FNIR (group FPIR in brackets) per
    group and FPIR, and one differential row per rate, unresolved where no two groups have a value."""
    from lfr.evaluation.identify import _markdown

    rows, diffs = m.per_group(_two_groups(), 0.65, rates=(0.1, 0.05))
    result = {
        "dataset": "/d/set/images",
        "gallery_identities": 8,
        "gallery_templates": 8,
        "enrol_per_id": 1,
        "seed": 0,
        "left_out_identities": 20,
        "mated_searches": 8,
        "nonmated_searches": 20,
        "search": "exact",
        "model": "m",
        "metric": "COSINE",
        "threshold": 0.65,
        "failed_to_enrol": 0,
        "failed_probes": 0,
        "fell_back": 0,
        "below_quality_gate": 0,
        "tpir": 0.5,
        "fpir_at_threshold": 0.15,
        "rank1": 1.0,
        "fnir_at_fpir": {"0.1": 0.5, "0.05": 0.75},
        "groups": [r.as_dict() for r in rows],
        "largest_differential": [d.as_dict() for d in diffs],
    }
    md = _markdown(result, {"det_png": "/o/det.png"}).splitlines()
    assert "| A | 0.0000 / 0.5000 (0.0000) | unresolved / 0.7500 (0.0000) |" in md
    assert "| B | 0.7500 / 0.5000 (0.2000) | unresolved / 0.7500 (0.1000) |" in md
    assert "| FNIR AT FPIR 0.1 | B 0.7500 | A 0.0000 | 0.7500 | n/a |" in md, "no ratio to a zero rate"
    assert "| FNIR AT FPIR 0.05 | unresolved (0 groups) | | | |" in md
    assert "| FPIR AT OVERALL FPIR 0.1 | B 0.2000 | A 0.0000 | 0.2000 | n/a |" in md


def test_group_without_mated_searches_is_not_called_unresolved() -> None:
    """C has 10 non-mated searches (enough for FPIR 0.1) but no mated one: no FNIR, and not for want of
    non-mated searches, so the report says n/a, not unresolved."""
    from lfr.evaluation.identify import _own_fnir

    o = m.SearchOutcomes(
        np.array([0.9]),
        np.ones(1, dtype=int),
        np.linspace(0.1, 0.5, 20),
        lower_is_better=False,
        mated_groups=["A"],
        nonmated_groups=["A"] * 10 + ["C"] * 10,
    )
    rows, _ = m.per_group(o, 0.65, rates=(0.1,))
    c = {r.group: r.as_dict() for r in rows}["C"]
    assert c["fnir_at_fpir"] == {"0.1": None} and c["unresolved"] == []
    assert _own_fnir(c, "0.1") == "n/a"
    assert _own_fnir({**c, "unresolved": ["0.1"]}, "0.1") == "unresolved"
