"""The watchlist-size rule: a deployment without an explicit threshold gets the loosest calibrated threshold
whose expected false-alert rate for its watchlist size meets the target, never looser than the card's."""

from __future__ import annotations

import pytest

from lfr.watchlist.expected_rate import expected_rate, threshold_for_target, tpir_at

from .conftest import FakeCalibration, FakeCard

# A cosine card: threshold 0.40; FMR falls tenfold per 0.05 of similarity; TPIR falls as it gets stricter.
FIGURES = {
    "fmr@0.40": 1e-4,
    "fmr@0.45": 1e-5,
    "fmr@0.50": 1e-6,
    "fmr@0.55": 1e-7,
    "fmr@0.30": 1e-2,  # looser than the card threshold: never chosen by the rule
    "tpir@0.40": 0.80,
    "tpir@0.45": 0.75,
    "tpir@0.50": 0.70,
    "tpir@0.55": 0.60,
}
CARD = FakeCard(
    name="cos",
    metric="COSINE",
    threshold=0.40,
    threshold_floor=0.35,
    calibration=(FakeCalibration("cfp (open set)", FIGURES),),
)
TARGET = 1 / 6000


@pytest.mark.parametrize(
    "size,expected",
    [(1, 0.40), (10, 0.45), (100, 0.50), (1000, 0.55)],
)
def test_threshold_tightens_as_the_watchlist_grows(size: int, expected: float) -> None:
    choice = threshold_for_target(CARD, TARGET, size)
    assert choice.threshold == pytest.approx(expected)
    assert choice.meets_target
    assert choice.rate.false_alerts_per_1000 is not None
    assert choice.rate.false_alerts_per_1000 / 1000 <= TARGET
    # The next looser candidate would not have met the target (the choice is the loosest that does).
    if expected > 0.40:
        looser = expected_rate(CARD, round(expected - 0.05, 2), size)
        assert looser.false_alerts_per_1000 is not None and looser.false_alerts_per_1000 / 1000 > TARGET


def test_never_looser_than_the_card_threshold_even_for_one_image() -> None:
    assert threshold_for_target(CARD, 0.5, 1).threshold == pytest.approx(0.40)


def test_unreachable_target_returns_the_strictest_threshold_and_says_so() -> None:
    choice = threshold_for_target(CARD, TARGET, 100_000)
    assert choice.threshold == pytest.approx(0.55)
    assert not choice.meets_target
    assert "CANNOT meet" in choice.reason


def test_expected_tpir_is_reported_from_the_calibration() -> None:
    choice = threshold_for_target(CARD, TARGET, 100)
    assert choice.rate.tpir == pytest.approx(0.70)
    assert "TPIR 0.70" in choice.rate.summary()
    # Between calibrated points the TPIR of the next stricter point is a lower bound.
    point = tpir_at(CARD, 0.47)
    assert point is not None and point.fmr == pytest.approx(0.70)


def test_l2_cards_tighten_downwards() -> None:
    card = FakeCard(
        threshold=0.6,
        threshold_floor=0.6,
        calibration=(FakeCalibration("lfw", {"fmr@0.6": 1e-4, "fmr@0.5": 1e-5, "fmr@0.4": 1e-7}),),
    )
    assert threshold_for_target(card, TARGET, 1).threshold == pytest.approx(0.6)
    assert threshold_for_target(card, TARGET, 10).threshold == pytest.approx(0.5)
    assert threshold_for_target(card, TARGET, 1000).threshold == pytest.approx(0.4)


def test_bad_target_is_refused() -> None:
    with pytest.raises(ValueError):
        threshold_for_target(CARD, 0.0, 10)
