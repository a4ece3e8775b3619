"""``lfr threshold recommend``: the threshold that meets a false-alert target for a watchlist of N images.

Why the watchlist size matters: every face passing a camera is compared with every image on the watchlist,
so the chance that a face belonging to nobody on it raises a false alert (FPIR) grows with N:

    FPIR(N, T) = 1 - (1 - FMR(T))^N  ~=  N * FMR(T)            (independent comparisons)

where FMR(T) is the per-comparison false match rate at threshold T. To hold FPIR at a target ``f`` the
per-comparison rate must be ``FMR* = 1 - (1 - f)^(1/N)`` (about f / N). The threshold is then read off the
impostor comparisons of an evaluation run (``lfr eval verify|identify --out DIR`` saves them):

* **empirical** when the run holds at least 1 / FMR* impostor comparisons: the loosest threshold that
  admits no more than FMR* of them;
* otherwise **gaussian**: a normal distribution fitted to the impostor scores, ``T = mu + sigma * z`` with
  ``z = Phi^-1(FMR*)`` (distances) or ``Phi^-1(1 - FMR*)`` (similarities). Impostor tails are usually
  heavier than normal, so the fit is checked at the strictest rate the data resolves (10 / n): when the
  fit predicts fewer false matches there than were observed, FMR* is divided by that under-prediction
  factor before solving (never the other way), and the result says so. The extrapolated threshold is also
  never looser than the closest impostor comparison actually observed: the target expects fewer than one
  such match in the whole run, so matching one would contradict it.

The target is per person passing, as the deployment rule's (``governance.target_fpir``): a live camera
searches a steady person up to k times (``ingest.best_shot_max_per_track``) and an evaluation run measures
single searches, so the rate per search must hold ``f / k`` (the union bound over the k searches; a model
card's measured passages, which ``lfr eval calibrate`` adds, can only be tighter). With k = 1 the answer is
the per-search one.

The answer is never looser than the model card's ``threshold_floor``: going below the floor needs a recorded
reason (design: threshold governance), so a looser recommendation is clamped to the floor and flagged.
Expected false alerts per 10,000 people passing and per 10,000 searches use the same compounding formula
(lfr.watchlist.expected_rate), with an upper 95% bound from the data alone beside them (3 / n when no
impostor matched: the rule of three), because an extrapolated rate is a model, not a measurement; and
the expected TPIR is the share of mated scores in the run that pass the threshold (verification: TAR;
identification: rank-1 TPIR at the run's gallery size; a larger watchlist can only lower it). docs/accuracy.md
works an example.
"""

from __future__ import annotations

import json
import math
from fractions import Fraction
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np

from lfr.evaluation.metrics import clean_json, to_similarity
from lfr.watchlist.expected_rate import false_alerts_per_1000

TEN_THOUSAND = 10_000


class RecommendError(ValueError):
    """The evaluation result cannot support a recommendation; the message says what is missing."""


def parse_rate(text: str | float) -> float:
    """'1/6000', '0.001' or '1e-4' -> float in (0, 1)."""
    try:
        value = float(Fraction(str(text).strip())) if "/" in str(text) else float(text)
    except (ValueError, ZeroDivisionError):
        raise RecommendError(f"cannot read rate {text!r}: use e.g. 1/6000 or 0.001") from None
    if not 0.0 < value < 1.0:
        raise RecommendError(f"rate {text!r} must lie strictly between 0 and 1")
    return value


def per_comparison_rate(target_fpir: float, watchlist_size: int) -> float:
    """FMR* = 1 - (1 - f)^(1/N), computed stably for tiny f."""
    if watchlist_size < 1:
        raise RecommendError("watchlist size must be at least 1")
    return -math.expm1(math.log1p(-target_fpir) / watchlist_size)


def load_result(path: Path) -> dict[str, Any]:
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        raise RecommendError(f"evaluation result {p} does not exist") from None
    except ValueError as exc:
        raise RecommendError(f"evaluation result {p} is not JSON: {exc}") from None
    scores = data.get("scores") if isinstance(data, dict) else None
    if not isinstance(scores, dict) or "impostor_tail" not in scores:
        raise RecommendError(
            f"{p} holds no scores: pass the result.json that `lfr eval verify|identify --out DIR` writes "
            "(the --json output on stdout carries figures only)"
        )
    return data


class _Impostors:
    """Impostor comparisons as saved: the closest ``tail`` of ``count``, with mean and spread."""

    def __init__(self, scores: dict[str, Any]) -> None:
        self.lower = bool(scores["lower_is_better"])
        self.tail_sim = np.sort(
            to_similarity([np.nan if v is None else v for v in scores["impostor_tail"]], self.lower)
        )[::-1]
        self.count = int(scores["impostor_count"])
        self.mean = scores.get("impostor_mean")
        self.std = scores.get("impostor_std")

    def empirical_threshold(self, fmr: float) -> float | None:
        """Loosest native threshold admitting at most ``fmr`` of the comparisons; None if unresolved."""
        if self.count * fmr < 1.0 - 1e-9:
            return None
        allowed = math.floor(fmr * self.count + 1e-9)
        if allowed >= len(self.tail_sim):
            return None  # the saved tail is too short for so loose a rate (never for low rates)
        boundary = float(self.tail_sim[allowed])
        t = (
            (boundary + float(self.tail_sim[allowed - 1])) / 2.0
            if allowed > 0
            else float(np.nextafter(boundary, math.inf))
        )
        return -t if self.lower else t

    def inside_closest(self) -> float | None:
        """The loosest native threshold that matches none of the observed impostor comparisons."""
        if not len(self.tail_sim):
            return None
        t = float(np.nextafter(self.tail_sim[0], math.inf))
        return -t if self.lower else t

    def empirical_rate(self, threshold: float) -> float | None:
        """Observed FMR at a native threshold, when the saved tail reaches that far."""
        t = to_similarity([threshold], self.lower)[0]
        hits = int(np.sum(self.tail_sim >= t))
        if hits >= len(self.tail_sim) and len(self.tail_sim) < self.count:
            return None
        return hits / self.count if self.count else None

    def gaussian_threshold(self, fmr: float) -> float:
        if self.mean is None or not self.std:
            raise RecommendError("the result has too few impostor scores to fit a distribution")
        z = NormalDist().inv_cdf(fmr if self.lower else 1.0 - fmr)
        return float(self.mean + self.std * z)

    def gaussian_rate(self, threshold: float) -> float:
        if self.mean is None or not self.std:
            raise RecommendError("the result has too few impostor scores to fit a distribution")
        cdf = NormalDist(self.mean, self.std).cdf(threshold)
        return cdf if self.lower else 1.0 - cdf

    def rate(self, threshold: float) -> tuple[float, str]:
        emp = self.empirical_rate(threshold)
        if emp is not None and emp * self.count >= 1:
            return emp, "empirical"
        return self.gaussian_rate(threshold), "gaussian"


def _expected_tpir(result: dict[str, Any], threshold: float) -> tuple[float | None, str]:
    s = result["scores"]
    lower = bool(s["lower_is_better"])
    t = to_similarity([threshold], lower)[0]
    if "mated" in s:
        rows = s["mated"]
        if not rows:
            return None, "no mated searches"
        ok = [r for r in rows if r[0] is not None and r[1] == 1]
        sims = to_similarity([r[0] for r in ok], lower) if ok else np.zeros(0)
        return float(np.sum(sims >= t)) / len(rows), (
            f"rank-1 TPIR over {len(rows)} mated searches at a gallery of {result.get('gallery_templates')} "
            "templates (a larger watchlist can only lower it)"
        )
    gen = s.get("genuine") or []
    if not gen:
        return None, "no genuine pairs"
    sims = to_similarity([np.nan if v is None else v for v in gen], lower)
    return float(np.mean(sims >= t)), f"TAR over {len(gen)} genuine pairs (1:1; 1:N TPIR will be lower)"


def per_search_target(target_fpir: float, searches_per_person: int) -> float:
    """The false-alert rate per search that holds ``target_fpir`` per person searched up to k times.

    An evaluation run measures single searches, so a person's k searches are bounded by the union,
    ``k x`` the rate per search, the bound lfr.watchlist.expected_rate applies to a card without measured
    passages."""
    if searches_per_person < 1:
        raise RecommendError("searches per person must be at least 1")
    return target_fpir / searches_per_person


def recommend(
    result: dict[str, Any], target_fpir: float, watchlist_size: int, searches_per_person: int = 1
) -> dict[str, Any]:
    """The governance answer for one target per person passing and watchlist size (see the module
    docstring); ``searches_per_person`` is how many times a live camera searches one person."""
    imp = _Impostors(result["scores"])
    lower = imp.lower
    k = searches_per_person
    search_target = per_search_target(target_fpir, k)
    fmr = per_comparison_rate(search_target, watchlist_size)
    needed = math.ceil(1.0 / fmr)
    notes: list[str] = []
    check: dict[str, Any] | None = None
    found = imp.empirical_threshold(fmr)
    method = "empirical"
    threshold: float
    if found is not None:
        threshold = found
    else:
        method = "gaussian"
        solve_fmr = fmr
        check_rate = 10.0 / imp.count if imp.count else 1.0
        t_check = imp.empirical_threshold(check_rate) if check_rate < 1 else None
        if t_check is not None:
            observed = imp.empirical_rate(t_check) or check_rate
            predicted = imp.gaussian_rate(t_check)
            check = {"fmr": observed, "threshold": t_check, "gaussian_fmr": predicted}
            if predicted < observed and predicted > 0:
                solve_fmr = fmr * predicted / observed
                notes.append(
                    f"the normal fit under-predicts the observed tail by {observed / predicted:.2f}x at FMR "
                    f"{observed:.2g}; solved for FMR {solve_fmr:.3g} instead of {fmr:.3g} to stay on the "
                    "safe side"
                )
        threshold = imp.gaussian_threshold(solve_fmr)
        strictest_seen = imp.inside_closest()
        if strictest_seen is not None and (
            threshold > strictest_seen if lower else threshold < strictest_seen
        ):
            notes.append(
                f"the fit's threshold {threshold:.4f} would still match an observed impostor comparison, "
                "which the target expects fewer than once in this data: tightened to just inside the "
                "closest impostor"
            )
            threshold = strictest_seen
        notes.append(
            f"only {imp.count} impostor comparisons; {needed} are needed to measure FMR {fmr:.3g}: the "
            "threshold is extrapolated from a normal fit and must be confirmed on a larger set"
        )
    floor = result.get("threshold_floor")
    clamped = False
    if floor is not None:
        looser = threshold > floor if lower else threshold < floor
        if looser:
            notes.append(
                f"the target would allow threshold {threshold:.4f}, looser than the model card floor "
                f"{floor}; "
                "recommending the floor (going below it needs a recorded reason)"
            )
            threshold, clamped = float(floor), True
    rate, rate_basis = imp.rate(threshold)
    measured = imp.empirical_rate(threshold)
    # An upper 95% bound from the data alone: rule of three when nothing matched, else Poisson-normal.
    seen = round((measured or 0.0) * imp.count)
    upper = (3.0 if seen == 0 else seen + 1.96 * math.sqrt(seen) + 1.0) / imp.count if imp.count else 1.0
    tpir, tpir_basis = _expected_tpir(result, threshold)
    per_search = false_alerts_per_1000(min(max(rate, 0.0), 1.0), watchlist_size) / 1000.0
    per_search_upper = false_alerts_per_1000(min(upper, 1.0), watchlist_size) / 1000.0
    per_person = min(1.0, k * per_search)  # the union bound over the person's searches
    return clean_json(
        {
            "threshold": threshold,
            "metric": result.get("metric"),
            "method": method,
            "target_fpir": target_fpir,
            "watchlist_size": watchlist_size,
            "searches_per_person": k,
            "per_search_fpir_target": search_target,
            "per_comparison_fmr_target": fmr,
            "per_comparison_fmr_at_threshold": rate,
            "fmr_basis": rate_basis,
            "expected_fpir": per_person,
            "expected_fpir_per_search": per_search,
            "expected_false_alerts_per_10000_people": per_person * TEN_THOUSAND,
            "expected_false_alerts_per_10000_searches": per_search * TEN_THOUSAND,
            "per_comparison_fmr_upper_95": min(upper, 1.0),
            "false_alerts_per_10000_people_upper_95": min(1.0, k * per_search_upper) * TEN_THOUSAND,
            "false_alerts_per_10000_searches_upper_95": per_search_upper * TEN_THOUSAND,
            "person_basis": (
                "one search per person"
                if k == 1
                else f"upper bound: {k} x the rate per search (the run measures single searches)"
            ),
            "expected_tpir": tpir,
            "tpir_basis": tpir_basis,
            "card_threshold": result.get("threshold"),
            "threshold_floor": floor,
            "clamped_to_floor": clamped,
            "impostor_comparisons": imp.count,
            "comparisons_needed_to_measure": needed,
            "gaussian_fit": {"mean": imp.mean, "std": imp.std, "check": check},
            "source": {
                "kind": result.get("kind"),
                "dataset": result.get("dataset"),
                "model": result.get("model"),
            },
            "notes": notes,
        }
    )
