"""``lfr eval calibrate``: the per-comparison false match rates and TPIRs a model card records.

Why: the watchlist-size rule (lfr.watchlist.expected_rate.threshold_for_target) turns a target false-alert
rate per face into a threshold for a deployment's watchlist size. It needs the false match rate per
comparison (FMR) at many thresholds, measured on photos like the ones the cameras will see, and the TPIR to
expect there. Both come from one open-set development set:

* FMR at each threshold: every pair of photos of *different* people in the set (all of them, not a sample:
  7,000 CFP photos give about 24 million impostor pairs, so FMRs down to about 1e-7 are measured, not
  extrapolated); a threshold whose FMR rests on fewer than ``MIN_MATCHES`` impostor matches is left out;
* TPIR at each threshold: the rank-1 mated searches of ``lfr eval identify``'s seeded split that clear it;
* FMR per person passing (``fmr_person@T``): a live camera searches a person up to
  ``ingest.best_shot_max_per_track`` times, each search with the track's fused template so far
  (lfr.vision.fusion.running_fusions, the continuity bound included), and only faces that pass the quality
  gate are fused. So each person's photos that pass the gate are cut into simulated tracks of
  ``person_searches`` photos (``draws`` times, as ``lfr eval tracks`` does), and a (track, watchlist
  photo of another person) comparison counts as a match when any of the track's searches clears the
  threshold; the watchlist photos are the ones that pass the gate (enrolment refuses the others), as
  enrolment templates. The watchlist-size rule uses it to state the rate per person passing, which is what
  a force's target counts, rather than per search of a photo of any pose;
* TPIR of a person seen in ``person_searches`` views (``tpir_person@T``): ``lfr eval tracks``' live rule
  (``fused``) on the same seeded split, so an officer sees what several views of a person add to one face.

Beside the card's figures it reports the same rates split by the quality gate's verdict on the probe
(``by_gate``), compared with photos that pass it (a watchlist photo must: enrolment refuses the others):
a track that never passed the gate is still searched with its best face (``ingest.search_unpassed_tracks``),
and this says whether such a search matches strangers more often than a gated one, and how often it finds
the person, at the deployment's threshold.

The output is the ``figures`` mapping of a card Calibration record (``fmr@T``, ``tpir@T``, counts).
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lfr.core.config import Settings
from lfr.evaluation import metrics as m
from lfr.evaluation.datasets import identity_folders
from lfr.evaluation.embed_cache import embed_cached
from lfr.evaluation.identify import run_identify
from lfr.evaluation.tracks import cut_tracks, run_tracks
from lfr.vision import FaceAnalyzer
from lfr.vision.fusion import running_fusions

MIN_MATCHES = 5


def _passing(scores: np.ndarray, thresholds: np.ndarray, lower: bool) -> np.ndarray:
    """How many of ``scores`` pass each threshold: at or below it for a distance, at or above for a
    similarity."""
    vals = np.sort(scores)
    if lower:
        return np.searchsorted(vals, thresholds, side="right")
    return len(vals) - np.searchsorted(vals, thresholds, side="left")


def _count_comparisons(
    probe_vectors: np.ndarray,
    template_vectors: np.ndarray,
    keep: Callable[[np.ndarray, np.ndarray], np.ndarray],
    metric: str,
    thresholds: Sequence[float],
) -> tuple[int, list[int]]:
    """Score every probe against every template in blocks of rows; count the comparisons ``keep(rows,
    cols)`` selects (a boolean matrix over the block's row and column positions) and how many of them pass
    each threshold. Blocks keep the score matrix small: 7,000 photos would otherwise need 49 M floats."""
    lower = metric == "L2"
    t = np.asarray(thresholds, dtype=np.float64)
    counts = np.zeros(len(t), dtype=np.int64)
    n = 0
    if not len(template_vectors):
        return 0, counts.tolist()
    cols = np.arange(len(template_vectors))
    step = 1024
    for s in range(0, len(probe_vectors), step):
        rows = np.arange(s, min(s + step, len(probe_vectors)))
        block = m.score_matrix(probe_vectors[rows], template_vectors, metric)
        vals = block[keep(rows, cols)]
        n += len(vals)
        counts += _passing(vals, t, lower)
    return n, counts.tolist()


def impostor_counts(
    vectors: np.ndarray, owners: np.ndarray, metric: str, thresholds: Sequence[float]
) -> tuple[int, list[int]]:
    """How many pairs of different people there are, and how many of them pass each threshold."""

    def upper_impostors(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        # Upper triangle only (each pair once), different owners only.
        return (cols[None, :] > rows[:, None]) & (owners[cols][None, :] != owners[rows][:, None])

    return _count_comparisons(vectors, vectors, upper_impostors, metric, thresholds)


def passage_counts(
    vectors: np.ndarray,
    owners: np.ndarray,
    weights: np.ndarray,
    metric: str,
    thresholds: Sequence[float],
    *,
    track_len: int,
    draws: int,
    seed: int,
    min_similarity: float | None,
    gallery: np.ndarray | None = None,
    gallery_owners: np.ndarray | None = None,
) -> tuple[int, int, list[int]]:
    """Simulated passages (tracks of ``track_len`` of ``vectors``, one person's each, searched as the live
    embedder searches them) against every ``gallery`` entry of every other person (default: ``vectors``
    themselves): how many tracks, how many (track, gallery entry) comparisons, and how many of those match
    at each threshold in any of the track's searches."""
    if track_len < 1 or draws < 1:
        raise ValueError("track_len and draws must be at least 1")
    if gallery is None or gallery_owners is None:
        gallery, gallery_owners = vectors, owners
    lower = metric == "L2"
    by_id: dict[str, list[int]] = {}
    for i, o in enumerate(owners.tolist()):
        by_id.setdefault(str(o), []).append(i)
    tracks = cut_tracks(by_id, track_len, draws, seed)
    per_owner = np.bincount(gallery_owners, minlength=int(owners.max(initial=0)) + 1)
    t = np.asarray(thresholds, dtype=np.float64)
    counts = np.zeros(len(t), dtype=np.int64)
    n = 0
    step = 512
    for s in range(0, len(tracks), step):
        block = tracks[s : s + step]
        searches = [
            running_fusions(vectors[idx], weights[idx], metric, min_similarity).astype(np.float64)
            for _, idx in block
        ]
        starts = np.cumsum([0, *(len(x) for x in searches[:-1])])
        scores = m.score_matrix(np.concatenate(searches), gallery, metric)
        best = (np.minimum if lower else np.maximum).reduceat(scores, starts, axis=0)
        track_owner = np.array([owners[idx[0]] for _, idx in block])
        vals = best[track_owner[:, None] != gallery_owners[None, :]]
        n += int(len(gallery) * len(block) - per_owner[track_owner].sum())
        counts += _passing(vals, t, lower)
    return len(tracks), n, counts.tolist()


def comparison_counts(
    vectors: np.ndarray,
    owners: np.ndarray,
    probes: np.ndarray,
    templates: np.ndarray,
    metric: str,
    thresholds: Sequence[float],
    *,
    same_owner: bool,
    template_vectors: np.ndarray | None = None,
) -> tuple[int, list[int]]:
    """How many (probe, template) comparisons there are between the two index sets, and how many pass
    each threshold: of different people (``same_owner=False``, impostor) or of one person (genuine).

    Ordered comparisons, as a live search makes them (a probe against a watchlist photo), never an image
    with itself; when the two sets share images a pair can be counted once each way, which leaves the rates
    unchanged. ``template_vectors`` (indexed like ``vectors``) are the images' enrolment templates, when
    those differ from their probe embeddings (``models.mirror_templates``).
    """
    tv = vectors if template_vectors is None else template_vectors
    p_ids = np.asarray(probes, dtype=np.int64)
    t_ids = np.asarray(templates, dtype=np.int64)

    def selected(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        r, c = p_ids[rows], t_ids[cols]
        relation = owners[r][:, None] == owners[c][None, :]
        return (relation if same_owner else ~relation) & (r[:, None] != c[None, :])

    return _count_comparisons(vectors[p_ids], tv[t_ids], selected, metric, thresholds)


def gate_split(
    vectors: np.ndarray,
    owners: np.ndarray,
    passed: np.ndarray,
    metric: str,
    thresholds: Sequence[float],
    template_vectors: np.ndarray | None = None,
) -> dict[str, dict[str, Any]]:
    """FMR and genuine match rate at each threshold for probes that passed the quality gate and for those
    that failed it, each against the photos that passed it (as enrolment templates when
    ``template_vectors`` is given); a rate resting on fewer than ``MIN_MATCHES`` impostor matches is
    ``None``."""
    templates = np.flatnonzero(passed)
    out: dict[str, dict[str, Any]] = {}
    for verdict, probes in (("passed", np.flatnonzero(passed)), ("failed", np.flatnonzero(~passed))):
        pair = (vectors, owners, probes, templates, metric, thresholds)
        n_imp, imp = comparison_counts(*pair, same_owner=False, template_vectors=template_vectors)
        n_gen, gen = comparison_counts(*pair, same_owner=True, template_vectors=template_vectors)
        out[verdict] = {
            "probes": len(probes),
            "impostor_comparisons": n_imp,
            "genuine_comparisons": n_gen,
            "fmr": {
                f"{t:g}": (float(f"{c / n_imp:.4g}") if n_imp and c >= MIN_MATCHES else None)
                for t, c in zip(thresholds, imp, strict=True)
            },
            "genuine_match_rate": {
                f"{t:g}": (round(c / n_gen, 4) if n_gen else None)
                for t, c in zip(thresholds, gen, strict=True)
            },
        }
    return out


def run_calibrate(
    settings: Settings,
    root: Path,
    thresholds: Sequence[float],
    *,
    cache_dir: Path | None = None,
    seed: int = 0,
    analyzer: FaceAnalyzer | None = None,
    person_searches: int | None = None,
    draws: int = 5,
) -> dict[str, Any]:
    """``person_searches`` (default ``ingest.best_shot_max_per_track``) is the track length of the
    per-person figures; ``draws`` how many times each person's photos are cut into tracks.

    Without ``cache_dir`` the run keeps its embeddings in a temporary one: the identify and tracks passes
    read the photos the first pass embedded instead of embedding them again."""
    if cache_dir is None:
        with tempfile.TemporaryDirectory(prefix="lfr-calibrate-") as tmp:
            return run_calibrate(
                settings,
                root,
                thresholds,
                cache_dir=Path(tmp),
                seed=seed,
                analyzer=analyzer,
                person_searches=person_searches,
                draws=draws,
            )
    analyzer = analyzer or FaceAnalyzer(settings)
    k = settings.ingest.best_shot_max_per_track if person_searches is None else person_searches
    card = analyzer.embedder.card
    ids = identity_folders(Path(root))
    paths = [(name, p) for name in sorted(ids) for p in ids[name]]
    emb = embed_cached(analyzer, [p for _, p in paths], cache_dir=cache_dir)
    found = [(name, p) for name, p in paths if emb.cache[p].vector is not None]
    if not found:
        raise ValueError(f"no face was found in any image under {root}")
    names = sorted({n for n, _ in found})
    index = {n: i for i, n in enumerate(names)}
    vectors = np.stack([v for _, p in found if (v := emb.cache[p].vector) is not None]).astype(np.float64)
    owners = np.array([index[n] for n, _ in found])
    passed = np.array([emb.cache[p].quality_passed for _, p in found], dtype=bool)
    quality = np.array([emb.cache[p].quality_score for _, p in found], dtype=np.float32)
    metric = card.metric or "COSINE"
    n_pairs, counts = impostor_counts(vectors, owners, metric, thresholds)
    # The gate split compares probes with watchlist photos: the passing photos as enrolment templates,
    # embedded again only when a template differs from a probe embedding.
    template_vectors = None
    if analyzer.mirrors_templates:
        keepers = [p for (_, p), keep in zip(found, passed, strict=True) if keep]
        enrolled = embed_cached(analyzer, keepers, cache_dir=cache_dir, template=True)
        template_vectors = vectors.copy()
        for i, (_, p) in enumerate(found):
            v = enrolled.cache[p].vector if passed[i] else None
            if v is not None:
                template_vectors[i] = v
    by_gate = gate_split(vectors, owners, passed, metric, thresholds, template_vectors)
    # Passages as a live camera makes them: faces that pass the quality gate, fused as the embedder fuses
    # them, against watchlist photos (which must pass it) enrolled as templates.
    gallery = vectors if template_vectors is None else template_vectors
    n_tracks, n_person, person = passage_counts(
        vectors[passed],
        owners[passed],
        quality[passed],
        metric,
        thresholds,
        track_len=k,
        draws=draws,
        seed=seed,
        min_similarity=settings.embedder.track_fusion_min_similarity,
        gallery=gallery[passed],
        gallery_owners=owners[passed],
    )
    ident = run_identify(
        settings, Path(root), seed=seed, analyzer=analyzer, cache_dir=cache_dir, tpir_at=thresholds
    )
    # TPIR of a person seen in k views: the seeded split's mated probes as tracks, searched as live.
    seen = run_tracks(
        settings,
        Path(root),
        track_len=k,
        seed=seed,
        analyzer=analyzer,
        cache_dir=cache_dir,
        draws=draws,
        thresholds=tuple(thresholds),
    )["rules"]["fused"]["at_thresholds"]
    figures: dict[str, float] = {
        "impostor_pairs": float(n_pairs),
        "images": float(len(paths)),
        "person_searches": float(k),
        "person_impostor_comparisons": float(n_person),
    }
    for t, c, cp in zip(thresholds, counts, person, strict=True):
        if c >= MIN_MATCHES:
            figures[f"fmr@{t:g}"] = float(f"{c / n_pairs:.4g}")
        if cp >= MIN_MATCHES:
            figures[f"fmr_person@{t:g}"] = float(f"{cp / n_person:.4g}")
        tpir = ident["tpir_at"].get(f"{t:g}")
        if tpir is not None and not math.isnan(tpir):
            figures[f"tpir@{t:g}"] = round(float(tpir), 4)
        tpir_seen = seen.get(f"{t:g}", {}).get("tpir")
        if k > 1 and tpir_seen is not None and not math.isnan(tpir_seen):
            figures[f"tpir_person@{t:g}"] = round(float(tpir_seen), 4)
    return {
        "kind": "calibrate",
        "dataset": str(root),
        "model": card.model_id,
        "detector": getattr(analyzer.detector, "model_id", "?"),
        "impostor_pairs": n_pairs,
        "impostor_matches": {f"{t:g}": c for t, c in zip(thresholds, counts, strict=True)},
        "person_tracks": n_tracks,
        "person_draws": draws,
        "person_impostor_matches": {f"{t:g}": c for t, c in zip(thresholds, person, strict=True)},
        "figures": figures,
        "identify": {k: ident[k] for k in ("rank1", "fnir_at_fpir", "mated_searches", "nonmated_searches")},
        "by_gate": by_gate,
    }
