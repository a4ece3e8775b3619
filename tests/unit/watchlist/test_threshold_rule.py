"""The watchlist-size rule: a deployment without an explicit threshold gets the loosest calibrated threshold
whose expected false-alert rate for its watchlist size meets the target, never looser than the card's."""

from __future__ import annotations

import math

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


# The same card with passages measured: three fused searches of one stranger match a template about twice as
# often as one search (fmr_person), which is below the union bound of three times.
PERSON_FIGURES = {
    **FIGURES,
    "person_searches": 3.0,
    "fmr_person@0.40": 2e-4,
    "fmr_person@0.45": 2e-5,
    "fmr_person@0.50": 2e-6,
    "fmr_person@0.55": 2e-7,
    "fmr_person@0.60": 2e-8,  # stricter than any per-search figure: a candidate of its own
    "tpir_person@0.40": 0.90,
    "tpir_person@0.50": 0.80,
}
PERSON_CARD = FakeCard(
    name="cos-person",
    metric="COSINE",
    threshold=0.40,
    threshold_floor=0.35,
    calibration=(FakeCalibration("cfp (open set)", PERSON_FIGURES),),
)


def test_one_search_per_person_is_the_rate_per_search() -> None:
    rate = expected_rate(PERSON_CARD, 0.45, 10)
    assert rate.searches_per_person == 1
    assert rate.false_alerts_per_1000 == pytest.approx(rate.false_alerts_per_1000_searches)


def test_per_person_rate_uses_the_measured_passage_figure_below_the_union_bound() -> None:
    rate = expected_rate(PERSON_CARD, 0.45, 10, searches_per_person=3)
    per_search = rate.false_alerts_per_1000_searches
    assert per_search is not None and rate.false_alerts_per_1000 is not None
    assert rate.false_alerts_per_1000 == pytest.approx(-1000 * math.expm1(10 * math.log1p(-2e-5)))
    assert per_search < rate.false_alerts_per_1000 < 3 * per_search
    assert "fmr_person" in rate.person_basis and "3 fused searches" in rate.person_basis
    assert "per 1,000 people passing (each searched up to 3 times" in rate.summary()


def test_without_passage_figures_the_union_bound_applies() -> None:
    rate = expected_rate(CARD, 0.45, 10, searches_per_person=3)
    assert rate.false_alerts_per_1000 == pytest.approx(3 * rate.false_alerts_per_1000_searches)
    assert rate.person_basis == "upper bound: 3 x the rate per search"


def test_passage_figures_for_fewer_searches_are_not_used() -> None:
    rate = expected_rate(PERSON_CARD, 0.45, 10, searches_per_person=4)
    assert rate.false_alerts_per_1000 == pytest.approx(4 * rate.false_alerts_per_1000_searches)


def test_a_looser_measured_passage_point_is_an_upper_bound() -> None:
    # At 0.47 both bounds come from the figures at 0.45: the passage figure (2e-5) is below three times
    # the per-search one (3e-5), so it is the bound, marked as one.
    rate = expected_rate(PERSON_CARD, 0.47, 10, searches_per_person=3)
    assert rate.person_basis.startswith("upper bound: fmr_person=")
    assert rate.false_alerts_per_1000 == pytest.approx(-1000 * math.expm1(10 * math.log1p(-2e-5)))


@pytest.mark.parametrize(
    "size,searches,expected",
    [
        # 1 in 6,000 per person: per search the card meets it at 0.45 for 10 images, per person not.
        (10, 1, 0.45),
        (10, 3, 0.50),
        (100, 1, 0.50),
        (100, 3, 0.55),
        (1000, 3, 0.60),  # only the passage figure reaches this far
    ],
)
def test_the_rule_meets_the_target_per_person_passing(size: int, searches: int, expected: float) -> None:
    choice = threshold_for_target(PERSON_CARD, TARGET, size, searches)
    assert choice.threshold == pytest.approx(expected)
    assert choice.meets_target
    assert choice.rate.false_alerts_per_1000 is not None
    assert choice.rate.false_alerts_per_1000 / 1000 <= TARGET
    assert "per person passing" in choice.reason


def test_union_bound_alone_tightens_the_rule_for_several_searches() -> None:
    # 10 images: 1e-5 per comparison meets 1/6000 per search (1e-4), not three times over (3e-4).
    assert threshold_for_target(CARD, TARGET, 10, 1).threshold == pytest.approx(0.45)
    assert threshold_for_target(CARD, TARGET, 10, 3).threshold == pytest.approx(0.50)


def test_searches_per_person_must_be_positive() -> None:
    with pytest.raises(ValueError, match="searches_per_person"):
        expected_rate(PERSON_CARD, 0.45, 10, searches_per_person=0)


def test_the_union_bound_wins_where_it_is_tighter() -> None:
    # A passage figure measured far looser than the threshold says less than 3 x the per-search figure.
    card = FakeCard(
        name="sparse",
        metric="COSINE",
        threshold=0.40,
        threshold_floor=0.35,
        calibration=(
            FakeCalibration("cfp", {"fmr@0.50": 1e-6, "person_searches": 3.0, "fmr_person@0.40": 2e-4}),
        ),
    )
    rate = expected_rate(card, 0.50, 10, searches_per_person=3)
    assert rate.person_basis == "upper bound: 3 x the rate per search"
    assert rate.false_alerts_per_1000 == pytest.approx(3 * rate.false_alerts_per_1000_searches)


def test_the_rate_per_person_is_never_below_the_rate_per_search() -> None:
    # At 0.60 the card has no per-search figure: the one at 0.55 bounds it (1e-7), and the passage figure
    # measured at 0.60 (2e-8, on faces that pass the gate) is lower: a person passing is at least one
    # search, so the rate per search is what is stated.
    rate = expected_rate(PERSON_CARD, 0.60, 1000, searches_per_person=3)
    assert rate.false_alerts_per_1000 is not None
    assert rate.false_alerts_per_1000 == pytest.approx(rate.false_alerts_per_1000_searches)
    assert rate.false_alerts_per_1000 == pytest.approx(-1000 * math.expm1(1000 * math.log1p(-1e-7)))
    assert rate.person_basis.startswith("the rate per search, as passages were measured lower")


def test_tpir_of_a_person_seen_in_several_views_is_reported_beside_one_face() -> None:
    rate = expected_rate(PERSON_CARD, 0.50, 10, searches_per_person=3)
    assert rate.tpir == pytest.approx(0.70) and rate.tpir_person == pytest.approx(0.80)
    assert rate.tpir_person_views == 3 and "3 fused views at threshold 0.5" in rate.tpir_person_basis
    assert "expected TPIR 0.70 from one face" in rate.summary()
    assert "0.80 for a person seen in 3 views" in rate.summary()
    # Between calibrated thresholds the stricter figure is the lower bound.
    assert expected_rate(PERSON_CARD, 0.45, 10, searches_per_person=3).tpir_person == pytest.approx(0.80)
    # Stricter than any figure: none to give.
    assert expected_rate(PERSON_CARD, 0.55, 10, searches_per_person=3).tpir_person is None


def test_no_tpir_for_views_a_deployment_cannot_make() -> None:
    # One search per person never fuses three views.
    rate = expected_rate(PERSON_CARD, 0.50, 10, searches_per_person=1)
    assert rate.tpir_person is None and "seen in" not in rate.summary()


def test_without_track_fusion_only_the_union_bound_applies() -> None:
    # The passage figures were measured with fused searches: crops searched one by one are bounded by
    # three times the rate per search, and no TPIR for three fused views is claimed.
    rate = expected_rate(PERSON_CARD, 0.50, 10, searches_per_person=3, fused=False)
    assert rate.person_basis == "upper bound: 3 x the rate per search"
    assert rate.false_alerts_per_1000 == pytest.approx(3 * rate.false_alerts_per_1000_searches)
    assert rate.tpir_person is None
    # So the rule is stricter for the same watchlist: 0.60 is a candidate only through a passage figure.
    assert threshold_for_target(PERSON_CARD, TARGET, 1000, 3, fused=False).threshold == pytest.approx(0.55)
    assert not threshold_for_target(PERSON_CARD, TARGET, 1000, 3, fused=False).meets_target
