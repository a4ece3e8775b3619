"""The false-alert rate shown to authorising officers: formula, precision, and where the FMR comes from."""

from __future__ import annotations

import math

import pytest

from lfr.watchlist.expected_rate import expected_rate, false_alerts_per_1000, fmr_at

from .conftest import FakeCalibration, FakeCard


def test_formula_matches_the_definition() -> None:
    for fmr, n in [(0.01, 1), (0.01, 100), (0.001, 5000), (0.2, 3)]:
        assert false_alerts_per_1000(fmr, n) == pytest.approx(1000 * (1 - (1 - fmr) ** n), rel=1e-12)
    assert false_alerts_per_1000(0.01, 1) == pytest.approx(10.0)
    assert false_alerts_per_1000(0.0, 10_000) == 0.0
    assert false_alerts_per_1000(0.5, 0) == 0.0
    assert false_alerts_per_1000(1.0, 3) == 1000.0


def test_tiny_rates_keep_their_precision() -> None:
    # 1e-12 per comparison, 10 faces compared with 1 watchlist image: naive (1 - f)**N rounds to 0.
    assert false_alerts_per_1000(1e-12, 1) == pytest.approx(1e-9, rel=1e-6)


def test_rate_grows_with_watchlist_size_and_saturates() -> None:
    rates = [false_alerts_per_1000(0.001, n) for n in (1, 10, 100, 1000, 100_000)]
    assert rates == sorted(rates) and rates[-1] == pytest.approx(1000.0, abs=1e-6)


@pytest.mark.parametrize("fmr,n", [(-0.1, 1), (1.1, 1), (0.1, -1)])
def test_invalid_inputs_are_refused(fmr: float, n: int) -> None:
    with pytest.raises(ValueError):
        false_alerts_per_1000(fmr, n)


def _card(**figures: float) -> FakeCard:
    return FakeCard(calibration=(FakeCalibration("lfw (pairs)", dict(figures)),))


def test_fmr_at_the_card_threshold_from_calibration() -> None:
    card = _card(far=0.01, pairs=1000)
    rate = expected_rate(card, None, 100)
    assert rate.fmr == 0.01 and rate.threshold == 0.6
    assert rate.false_alerts_per_1000 == pytest.approx(1000 * (1 - 0.99**100))
    assert "lfw" in rate.basis and "upper bound" not in rate.basis
    assert "per 1,000 people passing" in rate.summary()


def test_stricter_threshold_uses_the_looser_figure_as_an_upper_bound() -> None:
    card = _card(far=0.01, **{"fmr@0.5": 0.001})
    strict = expected_rate(card, 0.45, 10)
    assert strict.fmr == 0.001 and strict.basis.startswith("upper bound")
    mid = expected_rate(card, 0.55, 10)
    assert mid.fmr == 0.01  # 0.5's figure does not cover 0.55 (looser): the 0.6 figure does
    exact = expected_rate(card, 0.5, 10)
    assert exact.fmr == 0.001 and not exact.basis.startswith("upper bound")


def test_looser_than_any_calibration_is_unknown_not_zero() -> None:
    rate = expected_rate(_card(far=0.01), 0.7, 50)
    assert rate.fmr is None and rate.false_alerts_per_1000 is None and "unknown" in rate.summary()


def test_zero_false_matches_use_rule_of_three_only_with_an_impostor_count() -> None:
    assert fmr_at(_card(far=0.0, pairs=1000), 0.6) is None  # a placeholder or an unbounded zero
    point = fmr_at(_card(far=0.0, impostor_pairs=600), 0.6)
    assert point is not None and point.fmr == pytest.approx(3 / 600) and "rule-of-three" in point.basis


def test_several_figures_at_one_threshold_take_the_larger() -> None:
    card = FakeCard(calibration=(FakeCalibration("a", {"far": 0.002}), FakeCalibration("b", {"far": 0.02})))
    point = fmr_at(card, 0.6)
    assert point is not None and point.fmr == 0.02


def test_cosine_direction() -> None:
    card = FakeCard(
        name="c",
        metric="COSINE",
        threshold=0.4,
        threshold_floor=0.35,
        calibration=(FakeCalibration("x", {"far": 0.01, "fmr@0.5": 0.001}),),
    )
    assert expected_rate(card, 0.55, 1).fmr == 0.001  # stricter = larger similarity
    assert expected_rate(card, 0.45, 1).fmr == 0.01
    assert expected_rate(card, 0.3, 1).fmr is None
    assert not math.isnan(expected_rate(card, None, 1).threshold)
