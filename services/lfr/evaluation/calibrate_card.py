"""``lfr eval calibrate``: the per-comparison false match rates and TPIRs a model card records.

Why: the watchlist-size rule (lfr.watchlist.expected_rate.threshold_for_target) turns a target false-alert
rate per face into a threshold for a deployment's watchlist size. It needs the false match rate per
comparison (FMR) at many thresholds, measured on photos like the ones the cameras will see, and the TPIR to
expect there. Both come from one open-set development set:

* FMR at each threshold: every pair of photos of *different* people in the set (all of them, not a sample:
  7,000 CFP photos give about 24 million impostor pairs, so FMRs down to about 1e-7 are measured, not
  extrapolated); a threshold whose FMR rests on fewer than ``MIN_MATCHES`` impostor matches is left out;
* TPIR at each threshold: the rank-1 mated searches of ``lfr eval identify``'s seeded split that clear it.

The output is the ``figures`` mapping of a card Calibration record (``fmr@T``, ``tpir@T``, counts).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lfr.core.config import Settings
from lfr.evaluation import metrics as m
from lfr.evaluation.datasets import identity_folders
from lfr.evaluation.embed_cache import embed_cached
from lfr.evaluation.identify import run_identify
from lfr.vision import FaceAnalyzer

MIN_MATCHES = 5


def impostor_counts(
    vectors: np.ndarray, owners: np.ndarray, metric: str, thresholds: Sequence[float]
) -> tuple[int, list[int]]:
    """How many pairs of different people there are, and how many of them pass each threshold."""
    lower = metric == "L2"
    n_pairs = 0
    counts = np.zeros(len(thresholds), dtype=np.int64)
    t = np.asarray(thresholds, dtype=np.float64)
    step = 1024
    for s in range(0, len(vectors), step):
        block = m.score_matrix(vectors[s : s + step], vectors, metric)
        rows = np.arange(s, min(s + step, len(vectors)))
        # Upper triangle only (each pair once), different owners only.
        mask = (np.arange(len(vectors))[None, :] > rows[:, None]) & (owners[None, :] != owners[rows][:, None])
        vals = block[mask]
        n_pairs += len(vals)
        vals = np.sort(vals)
        if lower:
            counts += np.searchsorted(vals, t, side="right")
        else:
            counts += len(vals) - np.searchsorted(vals, t, side="left")
    return n_pairs, counts.tolist()


def run_calibrate(
    settings: Settings,
    root: Path,
    thresholds: Sequence[float],
    *,
    cache_dir: Path | None = None,
    seed: int = 0,
    analyzer: FaceAnalyzer | None = None,
) -> dict[str, Any]:
    analyzer = analyzer or FaceAnalyzer(settings)
    card = analyzer.embedder.card
    ids = identity_folders(Path(root))
    paths = [(name, p) for name in sorted(ids) for p in ids[name]]
    emb = embed_cached(analyzer, [p for _, p in paths], cache_dir=cache_dir)
    ok = [(name, emb.cache[p].vector) for name, p in paths if emb.cache[p].vector is not None]
    names = sorted({n for n, _ in ok})
    index = {n: i for i, n in enumerate(names)}
    vectors = np.stack([v for _, v in ok if v is not None]).astype(np.float64)
    owners = np.array([index[n] for n, _ in ok])
    n_pairs, counts = impostor_counts(vectors, owners, card.metric or "COSINE", thresholds)
    ident = run_identify(
        settings, Path(root), seed=seed, analyzer=analyzer, cache_dir=cache_dir, tpir_at=thresholds
    )
    figures: dict[str, float] = {"impostor_pairs": float(n_pairs), "images": float(len(paths))}
    for t, c in zip(thresholds, counts, strict=True):
        if c >= MIN_MATCHES:
            figures[f"fmr@{t:g}"] = float(f"{c / n_pairs:.4g}")
        tpir = ident["tpir_at"].get(f"{t:g}")
        if tpir is not None and not math.isnan(tpir):
            figures[f"tpir@{t:g}"] = round(float(tpir), 4)
    return {
        "kind": "calibrate",
        "dataset": str(root),
        "model": card.model_id,
        "detector": getattr(analyzer.detector, "model_id", "?"),
        "impostor_pairs": n_pairs,
        "impostor_matches": {f"{t:g}": c for t, c in zip(thresholds, counts, strict=True)},
        "figures": figures,
        "identify": {k: ident[k] for k in ("rank1", "fnir_at_fpir", "mated_searches", "nonmated_searches")},
    }
