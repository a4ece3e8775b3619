"""Confidence intervals and significance for demographic differentials in 1:N identification.

Why a bootstrap over identities, not over searches: the searches of one person are not independent (the
same face, camera habits, age), so resampling single images would pretend there is more evidence than there
is and give intervals that are too narrow. The National Physical Laboratory's study of the Met's and South
Wales Police's LFR algorithm resampled people for the same reason. Here every resample draws, with
replacement and separately within each group (and within each group's enrolled and not-enrolled people, so
a group keeps its share of mated and non-mated searches), as many identities as the group has, and keeps all
their searches. Seeded, so a report can be reproduced.

Per group it gives percentile intervals for FNIR and FPIR at the threshold in use, and at the thresholds that
give the *whole* set each fixed FPIR (recomputed in each resample, since that threshold is itself
estimated from the data). For each pair of compared groups it gives an interval for the difference (A - B);
a difference is called significant when its interval excludes 0. A permutation test over identity labels
(shuffle which group each identity belongs to, keep the threshold, count how often a difference at least as
large arises by chance) gives a p-value alongside; it is cheap because relabelling leaves the pooled set,
and so the threshold, unchanged.

Rates follow :mod:`lfr.evaluation.metrics` exactly (rank-1 mates only, failures never match, a threshold at
an FPIR is the loosest one admitting at most ``floor(FPIR * n)`` non-mated searches).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lfr.evaluation import metrics as m

DEFAULT_RESAMPLES = 1000
DEFAULT_PERMUTATIONS = 1000
DEFAULT_CONFIDENCE = 0.95


@dataclass(frozen=True)
class Interval:
    """A point estimate with its bootstrap percentile interval; None where the rate cannot be measured."""

    estimate: float | None
    low: float | None
    high: float | None

    def as_dict(self) -> dict[str, float | None]:
        return {"estimate": self.estimate, "low": self.low, "high": self.high}


@dataclass
class GroupIntervals:
    group: str
    mated_identities: int
    nonmated_identities: int
    fnir: Interval
    fpir: Interval
    fnir_at_overall_fpir: dict[str, Interval] = field(default_factory=dict)
    fpir_at_overall_fpir: dict[str, Interval] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "mated_identities": self.mated_identities,
            "nonmated_identities": self.nonmated_identities,
            "fnir": self.fnir.as_dict(),
            "fpir": self.fpir.as_dict(),
            "fnir_at_overall_fpir": {k: v.as_dict() for k, v in self.fnir_at_overall_fpir.items()},
            "fpir_at_overall_fpir": {k: v.as_dict() for k, v in self.fpir_at_overall_fpir.items()},
        }


@dataclass(frozen=True)
class Comparison:
    """Group A's rate minus group B's, with its interval, the verdict and the permutation p-value."""

    rate: str
    group_a: str
    group_b: str
    difference: Interval
    significant: bool | None
    permutation_p: float | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "rate": self.rate,
            "group_a": self.group_a,
            "group_b": self.group_b,
            "difference": self.difference.as_dict(),
            "significant": self.significant,
            "permutation_p": self.permutation_p,
        }


@dataclass
class DifferentialReport:
    resamples: int
    permutations: int
    seed: int
    confidence: float
    threshold: float
    groups: list[GroupIntervals]
    comparisons: list[Comparison]
    method: str = (
        "bootstrap over identities, stratified by group and by enrolled/not enrolled; percentile intervals; "
        "significant when the interval of the difference excludes 0; permutation test over identity labels"
    )

    def as_dict(self) -> dict[str, Any]:
        return m.clean_json(
            {
                "method": self.method,
                "resamples": self.resamples,
                "permutations": self.permutations,
                "seed": self.seed,
                "confidence": self.confidence,
                "threshold": self.threshold,
                "groups": [g.as_dict() for g in self.groups],
                "comparisons": [c.as_dict() for c in self.comparisons],
            }
        )


# ---- the searches as arrays ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Searches:
    """Searches with everything the rates need, each tied to an identity index."""

    mated_sim: np.ndarray  # similarity of the rank-1 mate; -inf when the mate is not at rank 1 or failed
    mated_id: np.ndarray
    nonmated_sim: np.ndarray  # best similarity of a non-mated search; -inf when the probe failed
    nonmated_id: np.ndarray
    id_group: np.ndarray  # group name of each identity
    n_ids: int


def _searches(o: m.SearchOutcomes) -> _Searches:
    """Index identities; without identity labels each search counts as its own identity."""
    mg = list(o.mated_groups) if o.mated_groups is not None else []
    ng = list(o.nonmated_groups) if o.nonmated_groups is not None else []
    if len(mg) != len(o.mate_scores) or len(ng) != len(o.nonmated_top):
        raise ValueError("group labels are needed for every search to compare groups")
    mi = list(o.mated_identities) if o.mated_identities is not None else [f"m{k}" for k in range(len(mg))]
    ni = (
        list(o.nonmated_identities)
        if o.nonmated_identities is not None
        else [f"n{k}" for k in range(len(ng))]
    )
    index: dict[tuple[str, str], int] = {}
    for g, i in itertools.chain(zip(mg, mi, strict=True), zip(ng, ni, strict=True)):
        index.setdefault((str(g), str(i)), len(index))
    id_group = np.array([g for g, _ in index], dtype=object)
    ranked = np.where(o.mate_ranks == 1, o.mate_scores, np.nan)
    return _Searches(
        mated_sim=m.to_similarity(ranked, o.lower_is_better),
        mated_id=np.array([index[(str(g), str(i))] for g, i in zip(mg, mi, strict=True)], dtype=np.int64),
        nonmated_sim=m.to_similarity(o.nonmated_top, o.lower_is_better),
        nonmated_id=np.array([index[(str(g), str(i))] for g, i in zip(ng, ni, strict=True)], dtype=np.int64),
        id_group=id_group,
        n_ids=len(index),
    )


def _strata(s: _Searches) -> list[np.ndarray]:
    """Identity indices per (group, has mated searches, has non-mated searches)."""
    has_m = np.bincount(s.mated_id, minlength=s.n_ids) > 0
    has_n = np.bincount(s.nonmated_id, minlength=s.n_ids) > 0
    keys: dict[tuple[str, bool, bool], list[int]] = {}
    for k in range(s.n_ids):
        keys.setdefault((str(s.id_group[k]), bool(has_m[k]), bool(has_n[k])), []).append(k)
    return [np.array(v, dtype=np.int64) for _, v in sorted(keys.items())]


def _resample_weights(s: _Searches, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(resamples, identities) counts: how often each identity is drawn in each resample."""
    w = np.zeros((resamples, s.n_ids), dtype=np.float64)
    rows = np.arange(resamples)[:, None]
    for members in _strata(s):
        picks = members[rng.integers(0, len(members), size=(resamples, len(members)))]
        np.add.at(w, (np.broadcast_to(rows, picks.shape), picks), 1.0)
    return w


def _boundaries(nonmated_sim: np.ndarray, weights: np.ndarray, rate: float) -> np.ndarray:
    """Per row of ``weights`` (one per non-mated search), the similarity a search must exceed for the whole
    set's FPIR to be <= ``rate``.

    The weighted form of metrics._point_at_false_rate: with integer weights (copies of a search) the cut
    sits just above the (allowed + 1)-th highest non-mated score, allowed = floor(rate * n).
    """
    order = np.argsort(-nonmated_sim, kind="stable")
    desc = nonmated_sim[order]
    cum = np.cumsum(weights[:, order], axis=1)
    total = cum[:, -1] if cum.shape[1] else np.zeros(len(weights))
    allowed = np.floor(rate * total + 1e-9)
    beyond = cum > allowed[:, None]
    pos = np.argmax(beyond, axis=1)
    out = np.where(beyond.any(axis=1), desc[pos] if len(desc) else -np.inf, -np.inf)
    return np.asarray(out, dtype=np.float64)


def _rates(
    s: _Searches, w: np.ndarray, groups: Sequence[str], cut: np.ndarray, strict: bool
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """FNIR and FPIR per group for each weight row; a search matches when its similarity is beyond ``cut``
    (``> cut`` when ``strict``, else ``>= cut``), one cut per row."""
    c = cut[:, None]
    hit = (s.mated_sim[None, :] > c) if strict else (s.mated_sim[None, :] >= c)
    fp = (s.nonmated_sim[None, :] > c) if strict else (s.nonmated_sim[None, :] >= c)
    hit &= np.isfinite(s.mated_sim)[None, :]
    fp &= np.isfinite(s.nonmated_sim)[None, :]
    wm, wn = w[:, s.mated_id], w[:, s.nonmated_id]
    fnir: dict[str, np.ndarray] = {}
    fpir: dict[str, np.ndarray] = {}
    for g in groups:
        gm = s.id_group[s.mated_id] == g
        gn = s.id_group[s.nonmated_id] == g
        with np.errstate(invalid="ignore", divide="ignore"):
            fnir[g] = 1.0 - (wm[:, gm] * hit[:, gm]).sum(axis=1) / wm[:, gm].sum(axis=1)
            fpir[g] = (wn[:, gn] * fp[:, gn]).sum(axis=1) / wn[:, gn].sum(axis=1)
    return fnir, fpir


def _interval(estimate: float, draws: np.ndarray, confidence: float) -> Interval:
    if not math.isfinite(estimate):
        return Interval(None, None, None)
    d = draws[np.isfinite(draws)]
    if len(d) == 0:
        return Interval(estimate, None, None)
    a = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(d, [a, 1.0 - a])
    return Interval(estimate, float(lo), float(hi))


def _permutation_p(
    per_id_events: np.ndarray,
    per_id_trials: np.ndarray,
    in_a: np.ndarray,
    in_b: np.ndarray,
    permutations: int,
    rng: np.random.Generator,
) -> float | None:
    """Two-sided p-value for rate(A) - rate(B) under random relabelling of the identities of A and B."""
    pool = np.flatnonzero((in_a | in_b) & (per_id_trials > 0))
    n_a = int(np.sum(in_a[pool]))
    if n_a == 0 or n_a == len(pool) or permutations <= 0:
        return None
    ev, tr = per_id_events[pool], per_id_trials[pool]
    labels = np.zeros((permutations + 1, len(pool)), dtype=bool)
    labels[0] = in_a[pool]  # row 0: the observed labelling
    base = np.zeros(len(pool), dtype=bool)
    base[:n_a] = True
    labels[1:] = rng.permuted(np.broadcast_to(base, (permutations, len(pool))), axis=1)
    ra = (labels * ev).sum(axis=1) / (labels * tr).sum(axis=1)
    rb = (~labels * ev).sum(axis=1) / (~labels * tr).sum(axis=1)
    diff = ra - rb
    observed = abs(diff[0])
    return float((1 + np.sum(np.abs(diff[1:]) >= observed - 1e-12)) / (permutations + 1))


def differential_intervals(
    o: m.SearchOutcomes,
    threshold: float,
    rates: Sequence[float] = m.FPIR_POINTS,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    permutations: int = DEFAULT_PERMUTATIONS,
    seed: int = 0,
    confidence: float = DEFAULT_CONFIDENCE,
    not_compared: Sequence[str] = ("unlabelled",),
) -> DifferentialReport:
    """Intervals per group and per pair of groups (see the module docstring); ``o`` needs group labels.

    Rates at an overall FPIR the whole set cannot resolve (fewer than 1/FPIR non-mated searches) are left
    out, as everywhere else in the figures.
    """
    if resamples < 1:
        raise ValueError("resamples must be at least 1")
    if not 0.0 < confidence < 1.0:
        raise ValueError("confidence must be between 0 and 1")
    s = _searches(o)
    rng = np.random.default_rng(seed)
    names = sorted({str(g) for g in s.id_group})
    compared = [g for g in names if g not in set(not_compared)]
    ones = np.ones((1, s.n_ids))
    w = _resample_weights(s, resamples, rng)
    t_sim = float(m.to_similarity([threshold], o.lower_is_better)[0])

    # (label, strict, point cut, resampled cuts): the threshold in use, then each resolvable overall FPIR.
    cuts: list[tuple[str, bool, np.ndarray, np.ndarray]] = [
        ("", False, np.array([t_sim]), np.full(resamples, t_sim))
    ]
    for rate in rates:
        if m.resolvable(len(s.nonmated_sim), rate):
            cuts.append(
                (
                    m.rate_label(rate),
                    True,
                    _boundaries(s.nonmated_sim, ones[:, s.nonmated_id], rate),
                    _boundaries(s.nonmated_sim, w[:, s.nonmated_id], rate),
                )
            )

    est: dict[tuple[str, str, str], float] = {}
    draws: dict[tuple[str, str, str], np.ndarray] = {}
    for label, strict, point, boot in cuts:
        pf, pp = _rates(s, ones, names, point, strict)
        bf, bp = _rates(s, w, names, boot, strict)
        for g in names:
            est[("fnir", label, g)], draws[("fnir", label, g)] = float(pf[g][0]), bf[g]
            est[("fpir", label, g)], draws[("fpir", label, g)] = float(pp[g][0]), bp[g]

    n_m = np.bincount(s.mated_id, minlength=s.n_ids)
    n_n = np.bincount(s.nonmated_id, minlength=s.n_ids)
    groups_out: list[GroupIntervals] = []
    for g in names:
        in_g = s.id_group == g
        row = GroupIntervals(
            group=g,
            mated_identities=int(np.sum(in_g & (n_m > 0))),
            nonmated_identities=int(np.sum(in_g & (n_n > 0))),
            fnir=_interval(est[("fnir", "", g)], draws[("fnir", "", g)], confidence),
            fpir=_interval(est[("fpir", "", g)], draws[("fpir", "", g)], confidence),
        )
        for label, *_ in cuts[1:]:
            row.fnir_at_overall_fpir[label] = _interval(
                est[("fnir", label, g)], draws[("fnir", label, g)], confidence
            )
            row.fpir_at_overall_fpir[label] = _interval(
                est[("fpir", label, g)], draws[("fpir", label, g)], confidence
            )
        groups_out.append(row)

    comparisons: list[Comparison] = []
    perm_rng = np.random.default_rng([seed, 1])
    for label, strict, point, _ in cuts:
        c = point[0]
        hit = ((s.mated_sim > c) if strict else (s.mated_sim >= c)) & np.isfinite(s.mated_sim)
        fp = ((s.nonmated_sim > c) if strict else (s.nonmated_sim >= c)) & np.isfinite(s.nonmated_sim)
        misses = np.bincount(s.mated_id, weights=(~hit).astype(np.float64), minlength=s.n_ids)
        falses = np.bincount(s.nonmated_id, weights=fp.astype(np.float64), minlength=s.n_ids)
        for a, b in itertools.combinations(compared, 2):
            for kind, events, trials in (("fnir", misses, n_m), ("fpir", falses, n_n)):
                ea, eb = est[(kind, label, a)], est[(kind, label, b)]
                diff = ea - eb if math.isfinite(ea) and math.isfinite(eb) else math.nan
                iv = _interval(diff, draws[(kind, label, a)] - draws[(kind, label, b)], confidence)
                significant = (
                    None if iv.low is None or iv.high is None else bool(iv.low > 0.0 or iv.high < 0.0)
                )
                p = (
                    _permutation_p(
                        events,
                        trials.astype(np.float64),
                        s.id_group == a,
                        s.id_group == b,
                        permutations,
                        perm_rng,
                    )
                    if iv.estimate is not None
                    else None
                )
                rate_name = kind if not label else f"{kind} at overall fpir {label}"
                comparisons.append(Comparison(rate_name, a, b, iv, significant, p))
    return DifferentialReport(
        resamples=resamples,
        permutations=permutations,
        seed=seed,
        confidence=confidence,
        threshold=float(threshold),
        groups=groups_out,
        comparisons=comparisons,
    )
