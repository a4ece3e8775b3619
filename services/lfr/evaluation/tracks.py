"""``lfr eval tracks``: open-set figures per person passing (per track), not per crop.

Protocol: the open-set split of ``lfr eval identify`` (same seed, enrolment and probe filters); each probe
identity's probe photos, in seeded order, are cut into simulated tracks of ``track_len`` photos (a shorter
remainder is a track too), as if one person had passed a camera and yielded that many crops. Each track is
decided by one of these rules, and each rule's figures are computed over tracks:

* ``crop``: every crop is its own search (the per-crop figures, for reference; counts crops, not tracks);
* ``any_crop``: the track alerts when any of its crops clears the threshold on its own (searching each
  crop as it arrives, with no fusion);
* ``fused``: as each crop arrives, the track's quality-weighted fused template so far is searched
  (lfr.vision.fusion.running_fusions, with ``embedder.track_fusion_min_similarity``); the track alerts when
  any of those searches clears the threshold: what the live embedder does;
* ``fused_final``: only the track's final fused template is searched (the lowest false-alert rate, but the
  alert waits until the person has passed).

A track's score under a rule is the best score over the searches the rule makes; a mated track counts as
found at a threshold when the mate is the top identity with a score beyond it in one of those searches.

``draws`` > 1 cuts each identity's probes into tracks that many times (draw 0 in the seeded order, the others
reshuffled), so that false-alert rates per track near the deployed thresholds (1e-3 and below) are resolved
at all: each stranger passes the camera ``draws`` times with different views. Draws of one person are not
independent (the number of strangers still bounds what the figures can say), so read them as how a rule
compares with another on the same people, not as a tighter interval. ``thresholds`` adds each rule's FPIR
and TPIR at those thresholds (``at_thresholds``), e.g. at the thresholds the watchlist-size rule deploys.

``switches`` > 0 simulates the tracker following another person: that many times over, each enrolled
person A with two probe photos gets a track of two of them and then one photo of another probe identity B,
searched by the live rule. ``identity_switches`` gives the share of those last searches, made on B's face,
whose score for A clears each threshold: alerts that would show B's face as A. The fusion's continuity
bound (``embedder.track_fusion_min_similarity``) is what keeps it low; set it to -1 to see it without.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from lfr.core.config import Settings
from lfr.evaluation import metrics as m
from lfr.evaluation.embed_cache import embed_cached
from lfr.evaluation.embedding import TightPolicy
from lfr.evaluation.identify import split_open_set
from lfr.vision import FaceAnalyzer
from lfr.vision.fusion import running_fusions

log = logging.getLogger(__name__)

RULES = ("crop", "any_crop", "fused", "fused_final")

T = TypeVar("T")


def _cut(items: list[T], n: int) -> list[list[T]]:
    return [items[i : i + n] for i in range(0, len(items), n)]


def cut_tracks(
    by_id: Mapping[str, Sequence[T]], track_len: int, draws: int, seed: int
) -> list[tuple[str, list[T]]]:
    """Each identity's items cut into simulated tracks of ``track_len`` (a shorter remainder is a track
    too), ``draws`` times: draw 0 in the given order, the others reshuffled with a seed per draw and
    identity, so a run is reproducible and adding an identity leaves the others' tracks as they were."""
    out: list[tuple[str, list[T]]] = []
    for d in range(draws):
        for name, items in by_id.items():
            order = list(items)
            if d:
                random.Random(f"{seed}:{d}:{name}").shuffle(order)
            out += [(name, t) for t in _cut(order, track_len)]
    return out


def run_tracks(
    settings: Settings,
    root: Path,
    *,
    track_len: int = 3,
    enrol_per_id: int = 1,
    seed: int = 0,
    enrol_glob: str | None = None,
    probe_glob: str | None = None,
    analyzer: FaceAnalyzer | None = None,
    tight: TightPolicy = "auto",
    cache_dir: Path | None = None,
    progress: bool = False,
    command: str = "",
    draws: int = 1,
    thresholds: tuple[float, ...] = (),
    switches: int = 0,
) -> dict[str, Any]:
    if track_len < 1:
        raise ValueError("track_len must be at least 1")
    if draws < 1:
        raise ValueError("draws must be at least 1")
    t0 = time.perf_counter()
    split = split_open_set(
        Path(root), seed=seed, enrol_per_id=enrol_per_id, enrol_glob=enrol_glob, probe_glob=probe_glob
    )
    analyzer = analyzer or FaceAnalyzer(settings)
    card = analyzer.embedder.card
    assert card.metric is not None and card.threshold is not None
    lower = card.metric == "L2"
    # The live embedder's fusion rule, continuity bound included (embedder.track_fusion_min_similarity).
    min_similarity = settings.embedder.track_fusion_min_similarity
    emb = embed_cached(
        analyzer,
        [p for _, p in split.mated + split.nonmated],
        tight=tight,
        cache_dir=cache_dir,
        progress=progress,
    )
    enrolled = embed_cached(
        analyzer, [p for _, p in split.gallery], tight=tight, cache_dir=cache_dir, template=True
    )

    templates = [(n, v) for n, p in split.gallery if (v := enrolled.cache[p].vector) is not None]
    t_names = sorted({n for n, _ in templates})
    t_index = {n: i for i, n in enumerate(t_names)}
    t_vecs = np.stack([v for _, v in templates]).astype(np.float64)
    t_owner = np.array([t_index[n] for n, _ in templates])

    # Templates grouped by identity, so one reduceat gives each identity's best template score.
    t_order = np.argsort(t_owner, kind="stable")
    t_starts = np.searchsorted(t_owner[t_order], np.arange(len(t_names)))

    def identity_scores(vectors: np.ndarray) -> np.ndarray:
        raw = m.score_matrix(np.asarray(vectors, np.float64), t_vecs[t_order], card.metric or "COSINE")
        sim = -raw if lower else raw
        return np.asarray(np.maximum.reduceat(sim, t_starts, axis=1))

    def tracks_of(pairs: list[tuple[str, Path]]) -> list[tuple[str, list[Path]]]:
        by_id: dict[str, list[Path]] = {}
        for name, p in pairs:
            by_id.setdefault(name, []).append(p)
        return cut_tracks(by_id, track_len, draws, seed)

    # rule -> (mate similarity, mate rank) per mated unit, top similarity per non-mated unit
    mated_out: dict[str, list[tuple[float, int]]] = {r: [] for r in RULES}
    nonmated_out: dict[str, list[float]] = {r: [] for r in RULES}
    crops_per_track: list[int] = []

    def decide(name: str | None, paths: list[Path]) -> None:
        outs = [emb.cache[p] for p in paths]
        ok = [o for o in outs if o.vector is not None]
        crops_per_track.append(len(paths))
        mate = t_index.get(name) if name is not None else None
        if name is not None and mate is None:  # the identity failed to enrol: every search is a miss
            mated_out["crop"] += [(math.nan, 0)] * len(outs)
            for r in RULES[1:]:
                mated_out[r].append((math.nan, 0))
            return
        # Per-crop rule: every crop, failed ones included, is one search.
        for o in outs:
            if o.vector is None:
                if mate is not None:
                    mated_out["crop"].append((math.nan, 0))
                else:
                    nonmated_out["crop"].append(math.nan)
        if not ok:
            for r in RULES[1:]:
                if mate is not None:
                    mated_out[r].append((math.nan, 0))
                else:
                    nonmated_out[r].append(math.nan)
            return
        vecs = np.stack([o.vector for o in ok if o.vector is not None])
        weights = np.array([o.quality_score for o in ok], np.float32)
        fused = running_fusions(vecs, weights, card.metric or "COSINE", min_similarity)
        per_rule = {
            "crop": identity_scores(vecs),
            "any_crop": identity_scores(vecs),
            "fused": identity_scores(fused),
            "fused_final": identity_scores(fused[-1:]),
        }
        for rule, s in per_rule.items():
            if mate is None:
                if rule == "crop":
                    nonmated_out[rule] += s.max(axis=1).tolist()
                else:
                    nonmated_out[rule].append(float(s.max()))
                continue
            ranks = 1 + (s > s[:, [mate]]).sum(axis=1)
            rows = [(float(s[i, mate]), int(ranks[i])) for i in range(len(s))]
            if rule == "crop":
                mated_out[rule] += rows
                continue
            top = [r for r in rows if r[1] == 1]
            best = max(top) if top else min(rows, key=lambda r: (r[1], -r[0]))
            mated_out[rule].append(best)

    mated_tracks = tracks_of(split.mated)
    nonmated_tracks = tracks_of(split.nonmated)
    for name, paths in mated_tracks:
        decide(name, paths)
    for _, paths in nonmated_tracks:
        decide(None, paths)

    switched = _switches(
        switches, seed, split.mated, emb.cache, t_index, identity_scores, card.metric, min_similarity
    )
    to_native = (lambda a: -a) if lower else (lambda a: a)
    rules: dict[str, Any] = {}
    t = float(card.threshold)
    for rule in RULES:
        scores = np.array([s for s, _ in mated_out[rule]], dtype=np.float64)
        ranks = np.array([r for _, r in mated_out[rule]], dtype=np.int64)
        o = m.SearchOutcomes(
            to_native(scores), ranks, to_native(np.array(nonmated_out[rule], np.float64)), lower
        )
        points = {rate: m.fnir_at_fpir(o, rate) for rate in m.FPIR_POINTS}
        rules[rule] = {
            "unit": "crop" if rule == "crop" else "track",
            "mated": len(scores),
            "nonmated": len(o.nonmated_top),
            "tpir_at_threshold": m.tpir_at(o, t),
            "fpir_at_threshold": m.fpir_at(o, t),
            "rank1": m.rank1_rate(o),
            "fnir_at_fpir": {m.rate_label(r): (1.0 - p.true_rate) if p else None for r, p in points.items()},
            "threshold_at_fpir": {m.rate_label(r): p.threshold if p else None for r, p in points.items()},
            "at_thresholds": {
                f"{x:g}": {"fpir": m.fpir_at(o, x), "tpir": m.tpir_at(o, x)} for x in thresholds
            },
        }
    result = {
        "kind": "tracks",
        "dataset": str(root),
        "model": card.model_id,
        "detector": getattr(analyzer.detector, "model_id", "?"),
        "metric": card.metric,
        "threshold": t,
        "track_len": track_len,
        "enrol_per_id": enrol_per_id,
        "enrol_glob": enrol_glob,
        "probe_glob": probe_glob,
        "seed": seed,
        "draws": draws,
        "fusion_min_similarity": min_similarity,
        "mated_tracks": len(mated_tracks),
        "nonmated_tracks": len(nonmated_tracks),
        "median_crops_per_track": float(np.median(crops_per_track)) if crops_per_track else 0.0,
        "rules": rules,
        "identity_switches": _switch_rates(switched, (float(card.threshold), *thresholds), lower),
        "command": command,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    log.info("tracks: %d mated, %d non-mated tracks", len(mated_tracks), len(nonmated_tracks))
    return m.clean_json(result)


def _switches(
    rounds: int,
    seed: int,
    mated: list[tuple[str, Path]],
    cache: dict[Path, Any],
    t_index: dict[str, int],
    identity_scores: Callable[[np.ndarray], np.ndarray],
    metric: str | None,
    min_similarity: float | None,
) -> list[float]:
    """Person A's score in the last search of each simulated switched track (A, A, then B)."""
    by_id: dict[str, list[tuple[np.ndarray, float]]] = {}
    for name, p in mated:
        o = cache[p]
        if o.vector is not None:
            by_id.setdefault(name, []).append((o.vector, o.quality_score))
    people = sorted(n for n, v in by_id.items() if len(v) >= 2 and n in t_index)
    if rounds < 1 or len(by_id) < 2:
        return []
    everyone = sorted(by_id)
    out: list[float] = []
    for r in range(rounds):
        rng = random.Random(f"{seed}:switch:{r}")
        for a in people:
            two = rng.sample(by_id[a], 2)
            third = rng.choice(by_id[rng.choice([n for n in everyone if n != a])])
            crops = [*two, third]
            vecs = np.stack([v for v, _ in crops])
            weights = np.array([q for _, q in crops], np.float32)
            last = running_fusions(vecs, weights, metric or "COSINE", min_similarity)[-1:]
            out.append(float(identity_scores(last)[0, t_index[a]]))
    return out


def _switch_rates(scores: list[float], thresholds: tuple[float, ...], lower: bool) -> dict[str, Any]:
    a = np.asarray(scores, np.float64)
    # identity_scores gives similarities (negated distances for L2): compare in that scale.
    rates = {f"{x:g}": float(np.mean(a >= (-x if lower else x))) if len(a) else None for x in thresholds}
    return {"tracks": len(a), "rate_matching_first_person": rates}
