"""The false-alert rate to expect for a deployment's watchlist size (design: threshold governance).

Every face in the crowd is compared with every image on the deployment's watchlists, so a per-comparison
false match rate (FMR) that looks negligible compounds with watchlist size: with FMR ``f`` and ``N``
comparisons per search, the chance a search of a face that is on no watchlist raises a false alert is
``1 - (1 - f)^N``. Authorising officers see this figure, per 1,000 people passing the cameras, before they
authorise.

Per person, not per search: a live camera searches a person who stays in view up to
``ingest.best_shot_max_per_track`` times (refresh views, each search with the track's fused template so
far), and the force's target counts people passing. The rate per person comes from the card's
``fmr_person@T`` figures when its calibration measured passages of at least that many searches (``lfr eval
calibrate``: simulated tracks of faces that pass the quality gate, searched as the live embedder searches
them), never below the rate per search (measured on faces of every pose), and otherwise from the union
bound ``k x`` the rate per search, which can only overstate it; never above that bound either.

The FMR comes from the model card's calibration. A figure measured at the card threshold (``far`` or
``fmr``) or at other thresholds (``fmr@0.55``) applies to any threshold at least as strict as the one it
was measured at (a stricter threshold can only match less), so the rate shown is an upper bound unless the
thresholds are equal. A calibration that saw no false matches gives the rule-of-three bound ``3 / n`` when
it records its impostor pair count (``impostor_pairs``). Without a usable figure the rate is "unknown",
never zero.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

_KEY = re.compile(r"^(?:fmr|far)(?:@(-?[0-9.]+))?$")
_TPIR_KEY = re.compile(r"^tpir@(-?[0-9.]+)$")
_PERSON_KEY = re.compile(r"^fmr_person@(-?[0-9.]+)$")
_TPIR_PERSON_KEY = re.compile(r"^tpir_person@(-?[0-9.]+)$")


class CalibratedCard(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def metric(self) -> str | None: ...

    @property
    def threshold(self) -> float | None: ...

    @property
    def calibration(self) -> Any: ...

    def is_looser(self, threshold: float, than: float) -> bool: ...


@dataclass(frozen=True)
class FmrPoint:
    threshold: float
    fmr: float
    basis: str


@dataclass(frozen=True)
class ExpectedRate:
    """``false_alerts_per_1000`` is per 1,000 people passing (up to ``searches_per_person`` searches each,
    ``person_basis`` says how it was bounded); ``false_alerts_per_1000_searches`` per 1,000 searches."""

    watchlist_size: int
    threshold: float
    fmr: float | None
    basis: str
    false_alerts_per_1000: float | None
    tpir: float | None = None
    tpir_basis: str = ""
    searches_per_person: int = 1
    false_alerts_per_1000_searches: float | None = None
    person_basis: str = ""
    tpir_person: float | None = None
    tpir_person_views: int = 0
    tpir_person_basis: str = ""

    def summary(self) -> str:
        if self.false_alerts_per_1000 is None:
            return (
                f"expected false alerts: unknown for {self.watchlist_size} watchlist images at threshold "
                f"{self.threshold:g} ({self.basis})"
            )
        tpir = (
            "" if self.tpir is None else f"; expected TPIR {self.tpir:.2f} from one face ({self.tpir_basis})"
        )
        if self.tpir is not None and self.tpir_person is not None:
            tpir += (
                f", {self.tpir_person:.2f} for a person seen in {self.tpir_person_views} views "
                f"({self.tpir_person_basis})"
            )
        per_person = ""
        if self.searches_per_person > 1:
            per_person = f" (each searched up to {self.searches_per_person} times: {self.person_basis})"
        return (
            f"expected false alerts: {self.false_alerts_per_1000:.3g} per 1,000 people passing{per_person} "
            f"for {self.watchlist_size} watchlist images at threshold {self.threshold:g} "
            f"(per-comparison FMR {self.fmr:.3g}; {self.basis}){tpir}"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "watchlist_size": self.watchlist_size,
            "threshold": self.threshold,
            "fmr": self.fmr,
            "basis": self.basis,
            "false_alerts_per_1000": self.false_alerts_per_1000,
            "tpir": self.tpir,
            "tpir_basis": self.tpir_basis,
            "searches_per_person": self.searches_per_person,
            "false_alerts_per_1000_searches": self.false_alerts_per_1000_searches,
            "person_basis": self.person_basis,
            "tpir_person": self.tpir_person,
            "tpir_person_views": self.tpir_person_views,
            "tpir_person_basis": self.tpir_person_basis,
            "summary": self.summary(),
        }


def false_alerts_per_1000(fmr: float, watchlist_size: int) -> float:
    """``1000 * (1 - (1 - fmr)^N)``, computed without losing precision for tiny ``fmr``."""
    if not 0.0 <= fmr <= 1.0:
        raise ValueError(f"fmr must lie in [0, 1], got {fmr}")
    if watchlist_size < 0:
        raise ValueError("watchlist size cannot be negative")
    if watchlist_size == 0 or fmr == 0.0:
        return 0.0
    if fmr == 1.0:
        return 1000.0
    return -1000.0 * math.expm1(watchlist_size * math.log1p(-fmr))


def calibration_points(card: CalibratedCard) -> list[FmrPoint]:
    """Every usable (threshold, FMR) figure in the card's calibration records."""
    points: list[FmrPoint] = []
    for figures, dataset in _records(card):
        impostors = float(figures.get("impostor_pairs", 0) or 0)
        for key, value in figures.items():
            m = _KEY.match(str(key).lower())
            if not m:
                continue
            at = float(m.group(1)) if m.group(1) else card.threshold
            if at is None:
                continue
            fmr = float(value)
            if fmr > 0:
                points.append(FmrPoint(at, fmr, f"{key}={fmr:.3g} measured on {dataset} at threshold {at:g}"))
            elif impostors > 0:
                bound = min(1.0, 3.0 / impostors)
                points.append(
                    FmrPoint(
                        at,
                        bound,
                        f"no false match in {impostors:.0f} impostor pairs of "
                        f"{dataset} at threshold {at:g}: rule-of-three bound",
                    )
                )
    return points


def _iter(value: Any) -> Iterable[Any]:
    return value if isinstance(value, list | tuple) else [value]


def _records(card: CalibratedCard) -> Iterable[tuple[dict[str, Any], str]]:
    """Each calibration record's figures and the short name of its data set."""
    for cal in _iter(getattr(card, "calibration", ()) or ()):
        figures = dict(getattr(cal, "figures", {}) or {})
        yield figures, str(getattr(cal, "dataset", "calibration")).split(" (")[0]


def fmr_at(card: CalibratedCard, threshold: float) -> FmrPoint | None:
    """The tightest calibrated FMR valid for ``threshold``: measured at it, or at a looser threshold."""
    usable = [p for p in calibration_points(card) if not card.is_looser(threshold, p.threshold)]
    if not usable:
        return None
    # The point closest to the requested threshold from the loose side; ties -> the larger (safer) FMR.
    nearest = min(usable, key=lambda p: (abs(p.threshold - threshold), -p.fmr))
    return nearest


def person_points(card: CalibratedCard, searches_per_person: int) -> list[FmrPoint]:
    """Calibrated per-comparison FMRs of a person passing (``fmr_person@T``) from every calibration record
    whose simulated passages made at least ``searches_per_person`` searches (``person_searches``): a
    passage searched more often can only match more, so a figure for fewer searches does not apply."""
    points: list[FmrPoint] = []
    for figures, dataset in _records(card):
        if float(figures.get("person_searches", 0) or 0) < searches_per_person:
            continue
        searches = int(float(figures["person_searches"]))
        for key, value in figures.items():
            m = _PERSON_KEY.match(str(key).lower())
            if m and float(value) > 0:
                at = float(m.group(1))
                points.append(
                    FmrPoint(
                        at,
                        float(value),
                        f"fmr_person={float(value):.3g} measured on {dataset} for passages of {searches} "
                        f"fused searches at threshold {at:g}",
                    )
                )
    return points


def _per_person(
    card: CalibratedCard,
    threshold: float,
    watchlist_size: int,
    per_search: float,
    searches: int,
    fused: bool = True,
) -> tuple[float, str]:
    """False alerts per 1,000 people passing with up to ``searches`` searches each, and how it was bounded.

    The card's passage figure is measured on faces as a live camera fuses them (those that pass the quality
    gate); the rate per search is measured on faces of every pose, which match strangers more often. A
    person passing is at least one search, so the rate shown is the larger of the two, and never more than
    the union bound over the searches.
    """
    if searches <= 1:
        return per_search, "one search per person"
    union = min(1000.0, searches * per_search)
    points = person_points(card, searches) if fused else []  # passages were measured fused
    usable = [p for p in points if not card.is_looser(threshold, p.threshold)]
    if usable:
        point = min(usable, key=lambda p: (abs(p.threshold - threshold), -p.fmr))
        measured = false_alerts_per_1000(point.fmr, watchlist_size)
        prefix = "" if point.threshold == threshold else "upper bound: "
        if per_search < union and measured <= per_search:
            return per_search, (
                f"the rate per search, as passages were measured lower (fmr_person={point.fmr:.3g} at "
                f"threshold {point.threshold:g})"
            )
        if measured < union:
            return measured, prefix + point.basis
    return union, f"upper bound: {searches} x the rate per search"


def expected_rate(
    card: CalibratedCard,
    threshold: float | None,
    watchlist_size: int,
    searches_per_person: int = 1,
    fused: bool = True,
) -> ExpectedRate:
    """The rate for a watchlist of ``watchlist_size`` images at ``threshold`` (None: the card's), per
    person passing with up to ``searches_per_person`` searches (``ingest.best_shot_max_per_track``);
    ``fused``: each search is made with the track's fused template (``embedder.track_fusion``), what the
    card's passage figures measured; otherwise only the union bound applies."""
    if searches_per_person < 1:
        raise ValueError("searches_per_person must be at least 1")
    t = card.threshold if threshold is None else threshold
    if t is None:
        return ExpectedRate(
            watchlist_size, float("nan"), None, f"model card {card.name} has no threshold", None
        )
    point = fmr_at(card, t)
    if point is None:
        basis = f"model card {card.name} records no false match rate valid at this threshold"
        return ExpectedRate(
            watchlist_size, float(t), None, basis, None, searches_per_person=searches_per_person
        )
    basis = point.basis if point.threshold == t else f"upper bound: {point.basis}"
    tpir = tpir_at(card, float(t))
    per_search = false_alerts_per_1000(point.fmr, watchlist_size)
    per_person, person_basis = _per_person(
        card, float(t), watchlist_size, per_search, searches_per_person, fused
    )
    seen = tpir_person_at(card, float(t), searches_per_person) if fused else None
    return ExpectedRate(
        watchlist_size,
        float(t),
        point.fmr,
        basis,
        per_person,
        tpir.fmr if tpir else None,
        tpir.basis if tpir else "",
        searches_per_person,
        per_search,
        person_basis,
        seen[0].fmr if seen else None,
        seen[1] if seen else 0,
        seen[0].basis if seen else "",
    )


def tpir_points(card: CalibratedCard) -> list[FmrPoint]:
    """Calibrated true-positive identification rates (``tpir@T`` figures), as (threshold, rate) points."""
    points: list[FmrPoint] = []
    for figures, dataset in _records(card):
        for key, value in figures.items():
            m = _TPIR_KEY.match(str(key).lower())
            if m:
                at = float(m.group(1))
                points.append(FmrPoint(at, float(value), f"measured on {dataset} at threshold {at:g}"))
    return points


def tpir_person_at(
    card: CalibratedCard, threshold: float, searches_per_person: int
) -> tuple[FmrPoint, int] | None:
    """The calibrated TPIR of a person seen in several views (``tpir_person@T``, each view searched with
    the fused template so far) valid for ``threshold``, and how many views, from a calibration whose
    passages a deployment searching up to ``searches_per_person`` times can make; None without one."""
    usable: list[tuple[FmrPoint, int]] = []
    for figures, dataset in _records(card):
        views = int(float(figures.get("person_searches", 0) or 0))
        if not 1 < views <= searches_per_person:
            continue
        for key, value in figures.items():
            m = _TPIR_PERSON_KEY.match(str(key).lower())
            if m and not card.is_looser(float(m.group(1)), threshold):
                at = float(m.group(1))
                basis = f"measured on {dataset} for {views} fused views at threshold {at:g}"
                usable.append((FmrPoint(at, float(value), basis), views))
    if not usable:
        return None
    return min(usable, key=lambda u: (abs(u[0].threshold - threshold), u[0].fmr))


def tpir_at(card: CalibratedCard, threshold: float) -> FmrPoint | None:
    """The calibrated TPIR valid for ``threshold``: measured at it or at a stricter one (a lower bound)."""
    usable = [p for p in tpir_points(card) if not card.is_looser(p.threshold, threshold)]
    if not usable:
        return None
    return min(usable, key=lambda p: (abs(p.threshold - threshold), p.fmr))


@dataclass(frozen=True)
class ThresholdChoice:
    """The threshold a deployment gets when none is set explicitly, and why."""

    threshold: float
    target_fpir: float
    rate: ExpectedRate
    meets_target: bool

    @property
    def reason(self) -> str:
        target = f"1 in {round(1 / self.target_fpir):,}" if self.target_fpir > 0 else "0"
        verdict = "meets" if self.meets_target else "CANNOT meet (strictest calibrated threshold used)"
        return (
            f"threshold {self.threshold:g} set by the watchlist-size rule: {verdict} the target of {target} "
            f"false alerts per person passing for {self.rate.watchlist_size} watchlist images; "
            f"{self.rate.summary()}"
        )


def threshold_for_target(
    card: CalibratedCard,
    target_fpir: float,
    watchlist_size: int,
    searches_per_person: int = 1,
    fused: bool = True,
) -> ThresholdChoice:
    """The loosest calibrated threshold whose expected false-alert rate for ``watchlist_size`` images is at
    most ``target_fpir`` per person passing (up to ``searches_per_person`` searches each), never looser
    than the card's threshold (looser needs a recorded reason).

    Candidates are the card's threshold and every threshold its calibration records an FMR at, per search
    or per person passing; when none meets the target (a very large watchlist), the strictest is returned
    with ``meets_target`` False so the authorising officer sees it.
    """
    if not 0.0 < target_fpir < 1.0:
        raise ValueError("target_fpir must lie strictly between 0 and 1")
    base = card.threshold
    if base is None:
        raise ValueError(f"model card {card.name} has no threshold")
    points = calibration_points(card) + (person_points(card, searches_per_person) if fused else [])
    candidates = {float(base)} | {p.threshold for p in points if not card.is_looser(p.threshold, float(base))}
    # Loosest first: for COSINE the lowest similarity, for L2 the largest distance.
    ordered = sorted(candidates, reverse=card.metric == "L2")
    best: ThresholdChoice | None = None
    for t in ordered:
        rate = expected_rate(card, t, watchlist_size, searches_per_person, fused)
        if rate.false_alerts_per_1000 is not None and rate.false_alerts_per_1000 / 1000.0 <= target_fpir:
            return ThresholdChoice(t, target_fpir, rate, True)
        best = ThresholdChoice(t, target_fpir, rate, False)
    assert best is not None
    return best
