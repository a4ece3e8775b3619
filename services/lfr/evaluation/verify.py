"""``lfr eval verify``: 1:1 verification figures of the configured models on a labelled pairs list.

Each distinct image is embedded once (see :mod:`lfr.evaluation.embedding` for tight crops, fallbacks and
failures). A pair whose image yielded no face is kept and scored as "never matches", so a model that fails
to find faces cannot look better by dropping them. Figures are computed at the model card's threshold (what
the live system uses), plus TAR at FAR 1e-3 / 1e-4 where the set has enough impostor pairs to resolve them,
the best threshold on this set, the equal error rate, and the cross-validated accuracy when the pairs carry
folds (the LFW protocol). Outputs: one JSON object (the figures), and with ``out_dir`` a ``result.json``
that also holds the raw scores (for ``lfr threshold recommend``), ROC and DET PNGs and a Markdown report.
Reports name pairs by CSV row only, never by file name, because file names are people's names.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from lfr.core.config import Settings
from lfr.evaluation import metrics as m
from lfr.evaluation.datasets import Pair, read_pairs, resolve_image
from lfr.evaluation.embedding import EvalEmbedder, TightPolicy
from lfr.evaluation.identify import impostor_summary
from lfr.evaluation.plots import plot_det, plot_roc
from lfr.vision import FaceAnalyzer

log = logging.getLogger(__name__)


def _far_key(far: float, what: str = "tar") -> str:
    """'tar_at_far_1e-3' style keys (the JSON contract of ``lfr eval verify --json``)."""
    mantissa, exp = f"{far:.0e}".split("e")
    return f"{what}_at_far_{mantissa}e-{int(exp[1:])}" if exp.startswith("-") else f"{what}_at_far_{far:g}"


def subsample(pairs: list[Pair], n: int | None, seed: int) -> list[Pair]:
    """A seeded random subset of ``n`` pairs in CSV order (all pairs when ``n`` is None or too large)."""
    if n is None or n >= len(pairs):
        return pairs
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(pairs), size=n, replace=False))
    return [pairs[i] for i in idx]


def run_verify(
    settings: Settings,
    pairs_file: Path,
    root: Path,
    *,
    analyzer: FaceAnalyzer | None = None,
    tight: TightPolicy = "auto",
    sample: int | None = None,
    seed: int = 0,
    out_dir: Path | None = None,
    progress: bool = False,
    command: str = "",
    all_impostors: bool = False,
) -> dict[str, Any]:
    """Run the evaluation; return the JSON-safe figures (without raw scores).

    ``all_impostors`` adds TAR at each FAR against every pair of the list's images that show different
    people (the identity is an image's folder), not only the impostor pairs the list names: LFW dev's 564
    impostor pairs cannot resolve FAR 1e-3, its 1,493 images give about a million impostor pairs.
    """
    t0 = time.perf_counter()
    pairs_file, root = Path(pairs_file), Path(root)
    pairs = subsample(read_pairs(pairs_file), sample, seed)
    analyzer = analyzer or FaceAnalyzer(settings)
    card = analyzer.embedder.card
    lower = card.metric == "L2"
    assert card.threshold is not None
    emb = EvalEmbedder(analyzer, tight)
    paths = {
        (p.a, p.b): (resolve_image(root, p.a, pairs_file), resolve_image(root, p.b, pairs_file))
        for p in pairs
    }
    emb.embed_all([x for ab in paths.values() for x in ab], progress=progress, desc="verify")

    scores = np.full(len(pairs), math.nan)
    for k, p in enumerate(pairs):
        pa, pb = paths[(p.a, p.b)]
        ea, eb = emb.cache[pa], emb.cache[pb]
        if ea.vector is not None and eb.vector is not None:
            scores[k] = float(card.distance(ea.vector, eb.vector))
    same = np.array([p.same for p in pairs], dtype=bool)
    folds = np.array([p.fold or "" for p in pairs], dtype=object)
    gen, imp = scores[same], scores[~same]

    at_card = m.rates_at(gen, imp, card.threshold, lower)
    best = m.best_threshold(gen, imp, lower)
    points = {far: m.tar_at_far(gen, imp, far, lower) for far in m.FAR_POINTS}
    cv = m.cross_validated_accuracy(gen, imp, folds[same], folds[~same], lower) if any(folds) else None
    finite_g, finite_i = gen[np.isfinite(gen)], imp[np.isfinite(imp)]
    extra: dict[str, Any] = {}
    if all_impostors:
        every = sorted({x for ab in paths.values() for x in ab})
        ok = [(p, v) for p in every if (v := emb.cache[p].vector) is not None]
        owners = np.array([p.parent.name for p, _ in ok])
        raw = m.score_matrix(np.stack([v for _, v in ok]), np.stack([v for _, v in ok]), card.metric or "L2")
        upper = np.triu(np.ones(raw.shape, dtype=bool), 1) & (owners[:, None] != owners[None, :])
        all_imp = raw[upper]
        extra = {
            "impostor_pairs_all": len(all_imp),
            "all_impostors": {
                _far_key(far): (p.true_rate if p else None)
                for far, p in ((f, m.tar_at_far(gen, all_imp, f, lower)) for f in m.FAR_POINTS)
            },
            "far_at_threshold_all_impostors": m.rates_at(gen, all_imp, card.threshold, lower).far,
        }
    result: dict[str, Any] = {
        "kind": "verify",
        "dataset": str(pairs_file),
        "root": str(root),
        "model": card.model_id,
        "metric": card.metric,
        "threshold": card.threshold,
        "threshold_floor": card.threshold_floor,
        "accuracy": at_card.accuracy,
        "tar_at_threshold": at_card.tar,
        "far_at_threshold": at_card.far,
        "false_accepts_at_threshold": at_card.false_accepts,
        "false_rejects_at_threshold": at_card.genuine - at_card.true_accepts,
        **{_far_key(far): pt.true_rate if pt else None for far, pt in points.items()},
        **{_far_key(far, "threshold"): pt.threshold if pt else None for far, pt in points.items()},
        "unresolved": [_far_key(far) for far, pt in points.items() if pt is None],
        "best_threshold": best.threshold,
        "best_accuracy": best.accuracy,
        "cv_accuracy": cv,
        "eer": m.equal_error_rate(gen, imp, lower),
        "pairs": len(pairs),
        "genuine_pairs": int(same.sum()),
        "impostor_pairs": int((~same).sum()),
        **extra,
        "pairs_failed": int(np.isnan(scores).sum()),
        "genuine_mean": float(finite_g.mean()) if len(finite_g) else None,
        "impostor_mean": float(finite_i.mean()) if len(finite_i) else None,
        **emb.summary(),
        "tight": tight,
        "sample": sample,
        "seed": seed,
        "command": command,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    if out_dir is not None:
        result.update(write_outputs(result, gen, imp, lower, Path(out_dir), pairs, scores))
    log.info("verify: %d pairs, accuracy %.4f at threshold %g", len(pairs), at_card.accuracy, card.threshold)
    return m.clean_json(result)


def write_outputs(
    result: dict[str, Any],
    gen: np.ndarray,
    imp: np.ndarray,
    lower: bool,
    out_dir: Path,
    pairs: list[Pair],
    scores: np.ndarray,
) -> dict[str, str]:
    out_dir.mkdir(parents=True, exist_ok=True)
    curve = m.roc_curve(gen, imp, lower)
    mark = (result["far_at_threshold"], result["tar_at_threshold"])
    name = Path(result["dataset"]).parent.name or "pairs"
    files = {
        "roc_png": str(
            plot_roc(curve, len(imp), out_dir / "roc.png", f"ROC: {name}, {_short(result)}", mark)
        ),
        "det_png": str(
            plot_det(
                curve,
                len(imp),
                len(gen),
                out_dir / "det.png",
                f"DET: {name}, {_short(result)}",
                mark=(mark[0], 1.0 - mark[1]),
                verticals=m.FAR_POINTS,
            )
        ),
        "report_md": str(out_dir / "report.md"),
        "result_json": str(out_dir / "result.json"),
    }
    full = {**result, **files, "curve": curve.as_dict()}
    full["scores"] = {
        "lower_is_better": lower,
        "genuine": [None if not math.isfinite(v) else round(float(v), 6) for v in gen],
        "impostor": [None if not math.isfinite(v) else round(float(v), 6) for v in imp],
        **impostor_summary(imp, lower),
    }
    Path(files["result_json"]).write_text(json.dumps(m.clean_json(full), indent=1))
    Path(files["report_md"]).write_text(markdown_report(result, files, pairs, scores, lower))
    return files


def _short(result: dict[str, Any]) -> str:
    return str(result["model"]).split(":")[0]


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None:
        return "unresolved"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def markdown_report(
    r: dict[str, Any], files: dict[str, str], pairs: list[Pair], scores: np.ndarray, lower: bool
) -> str:
    same = np.array([p.same for p in pairs], dtype=bool)
    sim = m.to_similarity(scores, lower)
    # The hardest cases by CSV row: impostor pairs that scored closest, genuine pairs that scored furthest.
    imp_rows = [pairs[i].row for i in np.flatnonzero(~same)[np.argsort(-sim[~same])][:5]]
    gen_rows = [pairs[i].row for i in np.flatnonzero(same)[np.argsort(sim[same])][:5]]
    unit = "Euclidean distance" if lower else "cosine similarity"
    lines = [
        f"# Verification report: {Path(r['dataset']).parent.name}",
        "",
        f"- pairs file: `{r['dataset']}` (root `{r['root']}`), {r['pairs']} pairs "
        f"({r['genuine_pairs']} genuine, {r['impostor_pairs']} impostor)"
        + (f", seeded sample of {r['sample']} (seed {r['seed']})" if r.get("sample") else ""),
        f"- model: `{r['model']}`, metric {r['metric']} ({unit}), card threshold {r['threshold']}",
        f"- preprocessing: tight-crop policy `{r['tight']}`; {r['images']} images, "
        f"{r['fell_back']} centre-crop "
        f"fallbacks, {r['padded']} found only on a padded canvas, {r['failed_to_enrol']} failed to enrol "
        f"(their {r['pairs_failed']} pairs count as non-matches), {r['below_quality_gate']} below the "
        "quality "
        "gate (still compared)",
        f"- command: `{r['command']}`" if r.get("command") else "- command: (library call)",
        "",
        "| figure | value |",
        "|---|---|",
        f"| accuracy at card threshold | {_fmt(r['accuracy'])} |",
        f"| TAR / FAR at card threshold | {_fmt(r['tar_at_threshold'])} / {_fmt(r['far_at_threshold'])} |",
        f"| TAR at FAR 1e-3 | {_fmt(r['tar_at_far_1e-3'])} |",
        f"| TAR at FAR 1e-4 | {_fmt(r['tar_at_far_1e-4'])} |",
        f"| best threshold on this set (optimistic) | {_fmt(r['best_threshold'])} "
        f"(accuracy {_fmt(r['best_accuracy'])}) |",
        f"| cross-validated accuracy (folds) | {_fmt(r['cv_accuracy'])} |",
        f"| equal error rate | {_fmt(r['eer'])} |",
        f"| mean genuine / impostor score | {_fmt(r['genuine_mean'])} / {_fmt(r['impostor_mean'])} |",
        "",
        "A rate is *unresolved* when the set has fewer than 1/rate impostor pairs: it cannot be measured "
        "here.",
        "",
        f"Hardest impostor pairs (CSV rows): {', '.join(map(str, imp_rows)) or '-'}; hardest genuine pairs: "
        f"{', '.join(map(str, gen_rows)) or '-'}. Look at these for label noise before trusting small rates.",
        "",
        f"![ROC]({Path(files['roc_png']).name}) ![DET]({Path(files['det_png']).name})",
        "",
    ]
    return "\n".join(lines)
