"""Accuracy figures for face verification (1:1) and open-set identification (1:N), in plain numpy.

Why our own code rather than scikit-learn: the figures drive threshold governance, so every rule must be
explicit and checked against hand-computed cases (tests/unit/evaluation), and two rules matter that
general-purpose ROC code does not apply:

* **Resolvability.** A rate of 1e-4 cannot be measured from fewer than 10,000 impostor comparisons: with
  fewer, the only thresholds available are those that admit zero false matches, and the "TAR at FAR 1e-4"
  such code reports is really TAR at FAR 0 on a small sample. A rate ``r`` is reported only when at least
  ``1 / r`` impostor pairs (or non-mated searches) were measured; otherwise the figure is ``None``
  ("unresolved") and the caller says so.
* **Failures count.** A pair or search whose image yielded no face is scored as "never matches" (a
  rejection), as NIST FRVT counts failures to enrol and to extract: dropping them would flatter the model.

Scores are in the model card's native units. ``lower_is_better=True`` for distances (L2), ``False`` for
similarities (COSINE). A comparison "matches" at threshold ``t`` when ``d <= t`` (distance) or ``s >= t``
(similarity), exactly as :meth:`lfr.vision.cards.ModelCard.is_match` decides, so a threshold found here means
the same thing in the live system. Internally everything is turned into a similarity (higher = closer) by
negating distances, and a failure is ``-inf`` on that scale.

Identification terms follow NIST FRVT 1:N (NISTIR 8271): a *mated* search has the probe's identity in the
gallery, a *non-mated* one does not. FPIR(T) = share of non-mated searches that return any candidate beyond
T; FNIR(T) = share of mated searches whose mate is not returned at rank 1 beyond T; TPIR = 1 - FNIR. Rank 1
is used because an LFR alert is raised on the top candidate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

FloatArray = np.ndarray

# Operating points the project reports (TAR at FAR; FNIR at FPIR). 1/6000 is the Metropolitan Police's
# published LFR false-alert target; 0.003 and 0.001 are NIST FRVT 1:N reporting points; 0.02 and 0.01 are
# the points development sets of a few hundred non-mated searches can still resolve.
FAR_POINTS: tuple[float, ...] = (1e-3, 1e-4)
FPIR_POINTS: tuple[float, ...] = (0.02, 0.01, 0.003, 0.001, 1 / 6000)


def rate_label(rate: float) -> str:
    """Stable text key for a rate: '0.003', '0.001', '0.0001', and '1/6000' for other integer reciprocals."""
    inv = 1.0 / rate
    n = round(inv)
    if abs(inv - n) < 1e-6 * inv and n > 100 and not math.log10(n).is_integer():
        return f"1/{n}"
    return f"{rate:g}" if rate >= 1e-4 else f"{rate:.0e}"


def resolvable(n: int, rate: float) -> bool:
    """Whether ``n`` trials can resolve ``rate``: at least one expected event, i.e. ``n >= 1 / rate``."""
    return rate > 0 and n * rate >= 1.0 - 1e-9


def to_similarity(scores: Sequence[float] | FloatArray, lower_is_better: bool) -> FloatArray:
    """Native scores -> higher-is-closer; NaN (a failed comparison) -> -inf, which never matches."""
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    s = -s if lower_is_better else s.copy()
    s[np.isnan(s)] = -np.inf
    return s


def to_native(similarity: float, lower_is_better: bool) -> float:
    return -similarity if lower_is_better else similarity


def _count_at_or_above(sorted_asc: FloatArray, t: FloatArray | float) -> FloatArray:
    """How many of ``sorted_asc`` are >= each ``t`` (vectorised)."""
    return len(sorted_asc) - np.searchsorted(sorted_asc, t, side="left")


def _strictly_above(value: float, finite_sorted_unique: FloatArray) -> float:
    """A threshold strictly above ``value`` and at or below the next observed score (a midpoint)."""
    if not np.isfinite(value):
        # Every impostor failed: a threshold just above -inf admits only real (finite) comparisons.
        return float(finite_sorted_unique[0]) if len(finite_sorted_unique) else math.inf
    i = int(np.searchsorted(finite_sorted_unique, value, side="right"))
    if i < len(finite_sorted_unique):
        return float((value + finite_sorted_unique[i]) / 2.0)
    return float(np.nextafter(value, math.inf))


# ---- verification -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rates:
    """Decision counts and rates at one threshold (native units)."""

    threshold: float
    tar: float
    far: float
    accuracy: float
    true_accepts: int
    false_accepts: int
    genuine: int
    impostor: int

    @property
    def frr(self) -> float:
        return 1.0 - self.tar


def rates_at(
    genuine: Sequence[float] | FloatArray,
    impostor: Sequence[float] | FloatArray,
    threshold: float,
    lower_is_better: bool,
) -> Rates:
    g = to_similarity(genuine, lower_is_better)
    i = to_similarity(impostor, lower_is_better)
    t = to_similarity([threshold], lower_is_better)[0]
    ta, fa = int(np.sum(g >= t)), int(np.sum(i >= t))
    n = len(g) + len(i)
    return Rates(
        threshold=float(threshold),
        tar=ta / len(g) if len(g) else math.nan,
        far=fa / len(i) if len(i) else math.nan,
        accuracy=(ta + len(i) - fa) / n if n else math.nan,
        true_accepts=ta,
        false_accepts=fa,
        genuine=len(g),
        impostor=len(i),
    )


@dataclass(frozen=True)
class Curve:
    """An error trade-off curve, one point per distinct threshold, from strictest to loosest.

    For verification ``x`` is FAR and ``y`` is TAR (ROC; the DET curve plots FAR against FRR = 1 - TAR).
    For identification ``x`` is FPIR and ``y`` is TPIR.
    """

    thresholds: FloatArray
    x: FloatArray
    y: FloatArray

    def as_dict(self, max_points: int = 400) -> dict[str, list[float]]:
        """A thinned copy for JSON (keeps the first and last point)."""
        n = len(self.thresholds)
        idx = np.unique(np.linspace(0, n - 1, min(n, max_points)).round().astype(int)) if n else np.array([])
        return {
            "thresholds": [float(v) for v in self.thresholds[idx]],
            "x": [float(v) for v in self.x[idx]],
            "y": [float(v) for v in self.y[idx]],
        }


def roc_curve(
    genuine: Sequence[float] | FloatArray, impostor: Sequence[float] | FloatArray, lower_is_better: bool
) -> Curve:
    """(threshold, FAR, TAR) at every distinct finite score, plus a first point admitting nothing."""
    g = np.sort(to_similarity(genuine, lower_is_better))
    i = np.sort(to_similarity(impostor, lower_is_better))
    both = np.concatenate([g, i])
    ts = np.unique(both[np.isfinite(both)])[::-1]
    ts = np.concatenate([[math.inf], ts])
    tar = _count_at_or_above(g, ts) / max(len(g), 1)
    far = _count_at_or_above(i, ts) / max(len(i), 1)
    native = np.array([to_native(float(t), lower_is_better) for t in ts])
    return Curve(native, far.astype(np.float64), tar.astype(np.float64))


@dataclass(frozen=True)
class OperatingPoint:
    """The loosest threshold whose measured false rate does not exceed ``target``, and the true rate there."""

    target: float
    threshold: float
    true_rate: float
    false_rate: float


def _point_at_false_rate(
    positives_sim: FloatArray, negatives_sim: FloatArray, target: float, lower_is_better: bool
) -> OperatingPoint | None:
    n = len(negatives_sim)
    if not resolvable(n, target):
        return None
    allowed = math.floor(target * n + 1e-9)  # false matches the target permits
    neg_desc = np.sort(negatives_sim)[::-1]
    # Accepting only scores above the (allowed+1)-th highest negative admits at most `allowed` negatives.
    boundary = float(neg_desc[allowed]) if allowed < n else -math.inf
    both = np.concatenate([positives_sim, negatives_sim])
    finite = np.unique(both[np.isfinite(both)])
    t_sim = _strictly_above(boundary, finite)
    return OperatingPoint(
        target=target,
        threshold=to_native(t_sim, lower_is_better),
        true_rate=float(np.mean(positives_sim >= t_sim)) if len(positives_sim) else math.nan,
        false_rate=float(np.mean(negatives_sim >= t_sim)),
    )


def tar_at_far(
    genuine: Sequence[float] | FloatArray,
    impostor: Sequence[float] | FloatArray,
    far: float,
    lower_is_better: bool,
) -> OperatingPoint | None:
    """TAR at the loosest threshold with FAR <= ``far``; ``None`` when fewer than 1/far impostor pairs."""
    return _point_at_false_rate(
        to_similarity(genuine, lower_is_better),
        to_similarity(impostor, lower_is_better),
        far,
        lower_is_better,
    )


@dataclass(frozen=True)
class BestThreshold:
    threshold: float
    accuracy: float


def best_threshold(
    genuine: Sequence[float] | FloatArray, impostor: Sequence[float] | FloatArray, lower_is_better: bool
) -> BestThreshold:
    """The threshold of highest accuracy: the centre of the first (strictest) run of best thresholds.

    Chosen on the data it is scored on, so the accuracy is optimistic; see :func:`cross_validated_accuracy`.
    """
    g = to_similarity(genuine, lower_is_better)
    i = to_similarity(impostor, lower_is_better)
    finite = np.unique(np.concatenate([g, i])[np.isfinite(np.concatenate([g, i]))])
    if len(finite) == 0:
        return BestThreshold(math.nan, math.nan)
    mids = (finite[:-1] + finite[1:]) / 2.0
    cands = np.concatenate([[np.nextafter(finite[-1], math.inf)], mids[::-1], [finite[0]]])
    gs, is_ = np.sort(g), np.sort(i)
    correct = _count_at_or_above(gs, cands) + (len(is_) - _count_at_or_above(is_, cands))
    k = int(np.argmax(correct))
    end = k
    while end + 1 < len(correct) and correct[end + 1] == correct[k]:
        end += 1
    # The middle of the first run of equally good thresholds: the choice least sensitive to sampling noise.
    t = (float(cands[k]) + float(cands[end])) / 2.0 if np.isfinite(cands[k]) else float(cands[end])
    return BestThreshold(to_native(t, lower_is_better), float(correct[k]) / (len(g) + len(i)))


def equal_error_rate(
    genuine: Sequence[float] | FloatArray, impostor: Sequence[float] | FloatArray, lower_is_better: bool
) -> float:
    """The rate where FAR and FRR cross (mean of the two at the closest observed threshold)."""
    c = roc_curve(genuine, impostor, lower_is_better)
    frr = 1.0 - c.y
    k = int(np.argmin(np.abs(c.x - frr)))
    return float((c.x[k] + frr[k]) / 2.0)


def cross_validated_accuracy(
    genuine: Sequence[float] | FloatArray,
    impostor: Sequence[float] | FloatArray,
    genuine_folds: Sequence[int] | FloatArray,
    impostor_folds: Sequence[int] | FloatArray,
    lower_is_better: bool,
) -> float | None:
    """LFW protocol: for each fold, pick the best threshold on the other folds, score the held-out fold.

    Returns the mean over folds, or ``None`` with fewer than two folds.
    """
    g, i = np.asarray(genuine, dtype=np.float64), np.asarray(impostor, dtype=np.float64)
    gf, if_ = np.asarray(genuine_folds), np.asarray(impostor_folds)
    folds = sorted(set(gf.tolist()) | set(if_.tolist()))
    if len(folds) < 2:
        return None
    accs = []
    for f in folds:
        t = best_threshold(g[gf != f], i[if_ != f], lower_is_better).threshold
        accs.append(rates_at(g[gf == f], i[if_ == f], t, lower_is_better).accuracy)
    return float(np.mean(accs))


# ---- open-set identification --------------------------------------------------------------------------


@dataclass(frozen=True)
class SearchOutcomes:
    """What the identification figures need from a set of 1:N searches.

    ``mate_scores[j]`` is the native score of mated search ``j``'s best-scoring mate template (NaN when the
    probe or every template of its identity failed), ``mate_ranks[j]`` the mate's rank among gallery
    identities (1 = top; 0 = not returned). ``nonmated_top[k]`` is the best native score of non-mated search
    ``k`` against the whole gallery (NaN when the probe failed: it raises nothing). Group labels are optional;
    identity labels (who each probe shows) let confidence intervals resample people rather than photos
    (lfr.evaluation.bootstrap).
    """

    mate_scores: FloatArray
    mate_ranks: np.ndarray
    nonmated_top: FloatArray
    lower_is_better: bool
    mated_groups: Sequence[str] | None = None
    nonmated_groups: Sequence[str] | None = None
    mated_identities: Sequence[str] | None = None
    nonmated_identities: Sequence[str] | None = None

    def subset(self, mated: np.ndarray, nonmated: np.ndarray) -> SearchOutcomes:
        return SearchOutcomes(
            self.mate_scores[mated], self.mate_ranks[mated], self.nonmated_top[nonmated], self.lower_is_better
        )


def tpir_at(o: SearchOutcomes, threshold: float, rank: int = 1) -> float:
    """Share of mated searches whose mate is at rank <= ``rank`` and beyond ``threshold``."""
    if len(o.mate_scores) == 0:
        return math.nan
    s = to_similarity(o.mate_scores, o.lower_is_better)
    t = to_similarity([threshold], o.lower_is_better)[0]
    hit = (o.mate_ranks >= 1) & (o.mate_ranks <= rank) & (s >= t)
    return float(np.mean(hit))


def fpir_at(o: SearchOutcomes, threshold: float) -> float:
    """Share of non-mated searches that return any candidate beyond ``threshold``."""
    if len(o.nonmated_top) == 0:
        return math.nan
    s = to_similarity(o.nonmated_top, o.lower_is_better)
    t = to_similarity([threshold], o.lower_is_better)[0]
    return float(np.mean(s >= t))


def rank1_rate(o: SearchOutcomes) -> float:
    """Closed-set rank-1 identification rate: the mate is the top candidate, whatever its score."""
    return float(np.mean(o.mate_ranks == 1)) if len(o.mate_ranks) else math.nan


def fnir_at_fpir(o: SearchOutcomes, fpir: float) -> OperatingPoint | None:
    """FNIR at the loosest threshold with FPIR <= ``fpir``; ``None`` below 1/fpir non-mated searches.

    ``true_rate`` of the result is TPIR; FNIR is ``1 - true_rate``.
    """
    if not resolvable(len(o.nonmated_top), fpir):
        return None
    ranked_mates = np.where(o.mate_ranks == 1, o.mate_scores, np.nan)  # only rank-1 mates can count
    return _point_at_false_rate(
        to_similarity(ranked_mates, o.lower_is_better),
        to_similarity(o.nonmated_top, o.lower_is_better),
        fpir,
        o.lower_is_better,
    )


def identification_curve(o: SearchOutcomes) -> Curve:
    """(threshold, FPIR, TPIR) at every distinct score: the data of a 1:N DET plot (FNIR = 1 - TPIR)."""
    ranked = np.where(o.mate_ranks == 1, o.mate_scores, np.nan)
    return roc_curve(ranked, o.nonmated_top, o.lower_is_better)


@dataclass
class GroupFigures:
    group: str
    mated_searches: int
    nonmated_searches: int
    tpir: float | None
    fnir: float | None
    fpir: float | None
    rank1: float | None
    # FNIR at each FPIR (rate label -> value) within the group's own searches: the group's own operating
    # point; None where the group has fewer than 1/FPIR non-mated searches (unresolved).
    fnir_at_fpir: dict[str, float | None] = field(default_factory=dict)
    # FNIR and FPIR of the group at the one threshold that gives the whole set each FPIR: what a deployment
    # running at that threshold does to this group.
    fnir_at_overall_fpir: dict[str, float | None] = field(default_factory=dict)
    fpir_at_overall_fpir: dict[str, float | None] = field(default_factory=dict)
    # Rate labels the group's own non-mated searches cannot resolve (fewer than 1/FPIR of them), named as
    # the overall figure names its own, so a None above is never read as "no errors".
    unresolved: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in self.__dict__.items():
            out[k] = {rk: _clean(rv) for rk, rv in v.items()} if isinstance(v, dict) else _clean(v)
        return out


@dataclass
class Differential:
    """The largest gap between groups for one error rate (only groups with searches of that kind)."""

    rate: str
    highest_group: str | None = None
    highest: float | None = None
    lowest_group: str | None = None
    lowest: float | None = None
    difference: float | None = None
    ratio: float | None = None
    groups_compared: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {k: _clean(v) for k, v in self.__dict__.items()}


def per_group(
    o: SearchOutcomes,
    threshold: float,
    not_compared: Sequence[str] = ("unlabelled",),
    rates: Sequence[float] = (),
) -> tuple[list[GroupFigures], list[Differential]]:
    """Figures per demographic (or other) group, and the largest gap between groups for each error rate.

    At ``threshold`` (the card's): TPIR, FNIR, FPIR, rank 1. For each FPIR in ``rates``: FNIR within the
    group's own searches, and FNIR and FPIR of the group at the threshold that gives the whole set that
    FPIR (the comparison NIST FRVT's demographic reports make: one threshold, as deployed, for everyone).
    Groups with few searches give noisy rates; each row carries its counts so readers can judge. Groups in
    ``not_compared`` (searches with no group label) get a row but take no part in the differentials.
    """
    mg = np.asarray(o.mated_groups if o.mated_groups is not None else [], dtype=object)
    ng = np.asarray(o.nonmated_groups if o.nonmated_groups is not None else [], dtype=object)
    names = sorted(set(mg.tolist()) | set(ng.tolist()))
    overall = {rate: fnir_at_fpir(o, rate) for rate in rates}
    rows: list[GroupFigures] = []
    for name in names:
        sub = o.subset(mg == name, ng == name)
        m, n = len(sub.mate_scores), len(sub.nonmated_top)
        tp = tpir_at(sub, threshold) if m else None
        row = GroupFigures(
            group=str(name),
            mated_searches=m,
            nonmated_searches=n,
            tpir=tp,
            fnir=None if tp is None else 1.0 - tp,
            fpir=fpir_at(sub, threshold) if n else None,
            rank1=rank1_rate(sub) if m else None,
        )
        for rate in rates:
            label = rate_label(rate)
            if not resolvable(n, rate):
                row.unresolved.append(label)
            own = fnir_at_fpir(sub, rate) if m else None
            row.fnir_at_fpir[label] = 1.0 - own.true_rate if own is not None else None
            at = overall[rate]
            row.fnir_at_overall_fpir[label] = (
                1.0 - tpir_at(sub, at.threshold) if at is not None and m else None
            )
            row.fpir_at_overall_fpir[label] = fpir_at(sub, at.threshold) if at is not None and n else None
        rows.append(row)
    compared = [r for r in rows if r.group not in set(not_compared)]
    diffs = [
        _differential("fnir", [(r.group, r.fnir) for r in compared]),
        _differential("fpir", [(r.group, r.fpir) for r in compared]),
    ]
    for rate in rates:
        label = rate_label(rate)
        diffs += [
            _differential(f"fnir at fpir {label}", [(r.group, r.fnir_at_fpir[label]) for r in compared]),
            _differential(
                f"fnir at overall fpir {label}", [(r.group, r.fnir_at_overall_fpir[label]) for r in compared]
            ),
            _differential(
                f"fpir at overall fpir {label}", [(r.group, r.fpir_at_overall_fpir[label]) for r in compared]
            ),
        ]
    return rows, diffs


def _differential(rate: str, values: list[tuple[str, float | None]]) -> Differential:
    vals = [(g, v) for g, v in values if v is not None]
    d = Differential(rate=rate, groups_compared=[g for g, _ in vals])
    if len(vals) < 2:
        return d
    hi = max(vals, key=lambda gv: gv[1])
    lo = min(vals, key=lambda gv: gv[1])
    d.highest_group, d.highest, d.lowest_group, d.lowest = hi[0], hi[1], lo[0], lo[1]
    d.difference = hi[1] - lo[1]
    d.ratio = hi[1] / lo[1] if lo[1] > 0 else None
    return d


# ---- scoring ------------------------------------------------------------------------------------------


def score_matrix(a: FloatArray, b: FloatArray, metric: str, chunk: int = 4096) -> FloatArray:
    """Native scores between every row of ``a`` and every row of ``b``: Euclidean distance or cosine.

    Brute force by matrix products, chunked over ``a``; exact, and fast enough for evaluation sets (a
    1,500 x 10,000 matrix of 128-d vectors takes well under a second). Production search uses Milvus.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    out = np.empty((len(a), len(b)), dtype=np.float64)
    if metric == "COSINE":
        b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    bb = np.sum(b * b, axis=1)
    for s in range(0, len(a), chunk):
        x = a[s : s + chunk]
        if metric == "COSINE":
            x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
            out[s : s + chunk] = x @ b.T
        elif metric == "L2":
            d2 = np.sum(x * x, axis=1)[:, None] + bb[None, :] - 2.0 * (x @ b.T)
            out[s : s + chunk] = np.sqrt(np.maximum(d2, 0.0))
        else:
            raise ValueError(f"unknown metric {metric!r}: expected L2 or COSINE")
    return out


def _clean(v: Any) -> Any:
    """JSON-safe value: NaN and infinities become None, numpy scalars plain Python."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def clean_json(obj: Any) -> Any:
    """Recursively make a result JSON-safe (no NaN, which JSON cannot carry)."""
    if isinstance(obj, Mapping):
        return {str(k): clean_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [clean_json(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [clean_json(v) for v in obj.tolist()]
    return _clean(obj)
