"""``lfr eval identify``: open-set 1:N identification figures, the way a watchlist is searched live.

Protocol (seeded, so a run can be repeated exactly): ``ROOT/<identity>/<image>``; for each enrolled identity
``enrol_per_id`` images (a seeded choice) form its gallery templates and the rest are *mated* probes. Without
``distractors`` a seeded third of the identities is left out of the gallery and all their images are
*non-mated* probes; with ``distractors`` every identity is enrolled and every image under the distractor
folder is a non-mated probe (a distractor folder named like a gallery identity is skipped, and counted).

Search is brute force in numpy (exact, and fast at evaluation sizes: see metrics.score_matrix); the live
system uses Milvus, whose approximate indexes can only lose candidates, so these figures are an upper bound
for the same model and data. An identity's score is its best template's score. Failures are never dropped:
an enrolment image without a face is a failure to enrol (its identity may end up with no template, and then
its mated probes are misses); a probe without a face is a failure to extract (a miss when mated, no alert
when non-mated), as NIST FRVT counts them.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lfr.core.config import Settings
from lfr.core.images import list_images
from lfr.evaluation import metrics as m
from lfr.evaluation.bootstrap import differential_intervals
from lfr.evaluation.datasets import identity_folders, read_groups
from lfr.evaluation.embed_cache import embed_cached
from lfr.evaluation.embedding import TightPolicy, tally
from lfr.evaluation.plots import plot_det
from lfr.vision import FaceAnalyzer

log = logging.getLogger(__name__)

UNLABELLED = "unlabelled"
IMPOSTOR_TAIL = 20_000  # most similar impostor comparisons kept for threshold recommendation


def impostor_summary(native: np.ndarray, lower: bool) -> dict[str, Any]:
    """What threshold recommendation needs from the impostor comparisons: their count, mean, spread and
    the most similar ``IMPOSTOR_TAIL`` of them (the tail is where every low false-match rate lives)."""
    finite = native[np.isfinite(native)]
    order = np.sort(finite) if lower else np.sort(finite)[::-1]
    return {
        "impostor_count": len(native),
        "impostor_failed": int(len(native) - len(finite)),
        "impostor_mean": float(finite.mean()) if len(finite) else None,
        "impostor_std": float(finite.std(ddof=1)) if len(finite) > 1 else None,
        "impostor_tail": [round(float(v), 6) for v in order[:IMPOSTOR_TAIL]],
    }


def run_identify(
    settings: Settings,
    root: Path,
    *,
    enrol_per_id: int = 1,
    distractors: Path | None = None,
    groups_file: Path | None = None,
    seed: int = 0,
    max_distractors: int | None = None,
    analyzer: FaceAnalyzer | None = None,
    tight: TightPolicy = "auto",
    out_dir: Path | None = None,
    progress: bool = False,
    command: str = "",
    cache_dir: Path | None = None,
    enrol_glob: str | None = None,
    probe_glob: str | None = None,
    enrol_pool: int | None = None,
    tpir_at: Sequence[float] = (),
) -> dict[str, Any]:
    """Run the protocol above; return JSON-safe figures (raw scores go to ``out_dir/result.json`` only).

    ``enrol_glob`` limits the gallery images to file names matching it (``frontal_*``: watchlist photos
    are frontal); ``probe_glob`` limits the probes likewise (both mated and non-mated). ``cache_dir`` keeps
    the embeddings on disk between runs (lfr.evaluation.embed_cache). ``enrol_pool`` keeps that many
    enrol-eligible images per identity out of the probes whatever ``enrol_per_id`` is, so runs with 1, 3
    and 5 templates search exactly the same probes.
    """
    t0 = time.perf_counter()
    groups = read_groups(groups_file) if groups_file else {}
    split = split_open_set(
        Path(root),
        seed=seed,
        enrol_per_id=enrol_per_id,
        enrol_glob=enrol_glob,
        probe_glob=probe_glob,
        enrol_pool=enrol_pool,
        distractors=distractors,
        max_distractors=max_distractors,
    )
    names, left_out = split.names, split.left_out
    gallery, mated, nonmated = split.gallery, split.mated, split.nonmated
    skipped_same_name = split.skipped_same_name

    analyzer = analyzer or FaceAnalyzer(settings)
    card = analyzer.embedder.card
    assert card.metric is not None and card.threshold is not None
    lower = card.metric == "L2"
    emb = embed_cached(
        analyzer, [p for _, p in mated + nonmated], tight=tight, cache_dir=cache_dir, progress=progress
    )
    # The gallery is enrolled as production enrols a watchlist photo (FaceAnalyzer.as_template).
    enrolled = embed_cached(
        analyzer, [p for _, p in gallery], tight=tight, cache_dir=cache_dir, progress=progress, template=True
    )
    enrol_summary = tally(enrolled.cache[p] for _, p in gallery)
    total = tally(
        [
            *(enrolled.cache[p] for _, p in dict.fromkeys(gallery)),
            *(emb.cache[p] for _, p in dict.fromkeys(mated + nonmated)),
        ]
    )

    templates: list[tuple[str, np.ndarray]] = [
        (n, v) for n, p in gallery if (v := enrolled.cache[p].vector) is not None
    ]
    t_names = sorted({n for n, _ in templates})
    t_index = {n: i for i, n in enumerate(t_names)}
    t_vecs = np.stack([v for _, v in templates]) if templates else np.zeros((0, card.dim or 1))
    t_owner = np.array([t_index[n] for n, _ in templates], dtype=np.int64)

    probes = mated + nonmated
    p_ok = np.array([emb.cache[p].vector is not None for _, p in probes], dtype=bool)
    p_vecs = (
        np.stack([v for _, p in probes if (v := emb.cache[p].vector) is not None])
        if p_ok.any()
        else np.zeros((0, t_vecs.shape[1]))
    )
    raw = (
        m.score_matrix(p_vecs, t_vecs, card.metric)
        if len(t_vecs) and len(p_vecs)
        else np.zeros((len(p_vecs), len(t_vecs)))
    )
    sim = -raw if lower else raw
    # Identity score = best template; one column per gallery identity.
    id_sim = np.full((len(p_vecs), len(t_names)), -np.inf)
    for j in range(len(t_names)):
        cols = t_owner == j
        if cols.any():
            id_sim[:, j] = sim[:, cols].max(axis=1)

    n_mated = len(mated)
    mate_scores = np.full(n_mated, math.nan)
    mate_ranks = np.zeros(n_mated, dtype=np.int64)
    nonmated_top = np.full(len(nonmated), math.nan)
    impostor_sims: list[np.ndarray] = []
    row = 0
    for k, (name, _) in enumerate(probes):
        if not p_ok[k]:
            continue
        s = id_sim[row]
        own = sim[row][t_owner != t_index[name]] if name in t_index else sim[row]
        impostor_sims.append(own)
        if k < n_mated:
            mate = t_index.get(name)
            if mate is not None:
                mate_scores[k] = s[mate]
                mate_ranks[k] = 1 + int(np.sum(s > s[mate]))
        elif len(s):
            nonmated_top[k - n_mated] = s.max()
        row += 1
    to_native = (lambda a: -a) if lower else (lambda a: a)
    outcomes = m.SearchOutcomes(
        to_native(mate_scores),
        mate_ranks,
        to_native(nonmated_top),
        lower,
        mated_groups=[groups.get(n, UNLABELLED) for n, _ in mated],
        nonmated_groups=[groups.get(n, UNLABELLED) for n, _ in nonmated],
        mated_identities=[n for n, _ in mated],
        nonmated_identities=[n for n, _ in nonmated],
    )

    t = float(card.threshold)
    tpir = m.tpir_at(outcomes, t)
    points = {rate: m.fnir_at_fpir(outcomes, rate) for rate in m.FPIR_POINTS}
    result: dict[str, Any] = {
        "kind": "identify",
        "dataset": str(root),
        "distractors": str(distractors) if distractors else None,
        "model": card.model_id,
        "metric": card.metric,
        "threshold": t,
        "threshold_floor": card.threshold_floor,
        "tpir": tpir,
        "fnir_at_threshold": 1.0 - tpir if not math.isnan(tpir) else None,
        "fpir_at_threshold": m.fpir_at(outcomes, t),
        "rank1": m.rank1_rate(outcomes),
        "tpir_at": {f"{x:g}": m.tpir_at(outcomes, float(x)) for x in tpir_at},
        "fnir_at_fpir": {m.rate_label(r): (1.0 - p.true_rate) if p else None for r, p in points.items()},
        "threshold_at_fpir": {m.rate_label(r): p.threshold if p else None for r, p in points.items()},
        "unresolved": [m.rate_label(r) for r, p in points.items() if p is None],
        "mated_searches": n_mated,
        "nonmated_searches": len(nonmated),
        "gallery_identities": len(t_names),
        "gallery_templates": len(templates),
        "identities": len(names),
        "left_out_identities": len(left_out),
        "enrol_per_id": enrol_per_id,
        "failed_to_enrol": enrol_summary["failed_to_enrol"],
        "failed_probes": total["failed_to_enrol"] - enrol_summary["failed_to_enrol"],
        "fell_back": total["fell_back"],
        "padded": total["padded"],
        "below_quality_gate": total["below_quality_gate"],
        "images": total["images"],
        "distractors_skipped_same_name": skipped_same_name,
        "seed": seed,
        "enrol_glob": enrol_glob,
        "enrol_pool": enrol_pool,
        "probe_glob": probe_glob,
        "tight": tight,
        "search": "brute-force numpy (exact)",
        "command": command,
    }
    if groups:
        rows, diffs = m.per_group(outcomes, t, rates=m.FPIR_POINTS)
        result["groups"] = [r.as_dict() for r in rows]
        result["largest_differential"] = [d.as_dict() for d in diffs]
        result["differential_intervals"] = differential_intervals(
            outcomes, t, m.FPIR_POINTS, seed=seed
        ).as_dict()
    result["seconds"] = round(time.perf_counter() - t0, 1)
    if out_dir is not None:
        imp_native = to_native(np.concatenate(impostor_sims)) if impostor_sims else np.zeros(0)
        result.update(_write_outputs(result, outcomes, imp_native, Path(out_dir)))
    log.info("identify: %d mated, %d non-mated searches, TPIR %.4f", n_mated, len(nonmated), tpir)
    return m.clean_json(result)


def _matches(path: Path, pattern: str | None) -> bool:
    return pattern is None or fnmatch.fnmatch(path.name, pattern)


@dataclass(frozen=True)
class OpenSetSplit:
    """Who is enrolled with which images, and which images are searched (mated and non-mated)."""

    names: list[str]
    left_out: set[str]
    gallery: list[tuple[str, Path]]
    mated: list[tuple[str, Path]]
    nonmated: list[tuple[str, Path]]
    skipped_same_name: int = 0


def split_open_set(
    root: Path,
    *,
    seed: int = 0,
    enrol_per_id: int = 1,
    enrol_glob: str | None = None,
    probe_glob: str | None = None,
    enrol_pool: int | None = None,
    distractors: Path | None = None,
    max_distractors: int | None = None,
) -> OpenSetSplit:
    """The seeded split of the module docstring (shared by ``identify`` and ``tracks``)."""
    if enrol_per_id < 1:
        raise ValueError("enrol_per_id must be at least 1")
    if enrol_pool is not None and enrol_pool < enrol_per_id:
        raise ValueError("enrol_pool must be at least enrol_per_id")
    rng = np.random.default_rng(seed)
    ids = identity_folders(Path(root))
    names = sorted(ids)
    if distractors is None:
        n_out = max(1, len(names) // 3)
        left_out = {names[i] for i in rng.choice(len(names), size=n_out, replace=False)}
    else:
        left_out = set()
    gallery: list[tuple[str, Path]] = []
    mated: list[tuple[str, Path]] = []
    nonmated: list[tuple[str, Path]] = []
    for name in names:
        imgs = [ids[name][i] for i in rng.permutation(len(ids[name]))]
        if name in left_out:
            nonmated += [(name, p) for p in imgs if _matches(p, probe_glob)]
        else:
            eligible = [p for p in imgs if _matches(p, enrol_glob)]
            reserved = eligible[: enrol_pool or enrol_per_id]
            gallery += [(name, p) for p in reserved[:enrol_per_id]]
            mated += [(name, p) for p in imgs if p not in reserved and _matches(p, probe_glob)]
    skipped_same_name = 0
    if distractors is not None:
        extra = list_images(Path(distractors))
        if max_distractors is not None and len(extra) > max_distractors:
            extra = [extra[i] for i in np.sort(rng.choice(len(extra), size=max_distractors, replace=False))]
        for p in extra:
            ident = p.parent.name if p.parent != Path(distractors) else p.stem
            if ident in ids:
                skipped_same_name += 1
                continue
            nonmated.append((ident, p))
    return OpenSetSplit(names, left_out, gallery, mated, nonmated, skipped_same_name)


def _write_outputs(
    result: dict[str, Any], o: m.SearchOutcomes, impostor_native: np.ndarray, out_dir: Path
) -> dict[str, str]:
    out_dir.mkdir(parents=True, exist_ok=True)
    curve = m.identification_curve(o)
    name = _set_name(result["dataset"])
    det = plot_det(
        curve,
        len(o.nonmated_top),
        len(o.mate_scores),
        out_dir / "det.png",
        f"1:N DET: {name}, {str(result['model']).split(':')[0]}",
        x_label="false positive identification rate (FPIR)",
        y_label="false negative identification rate (FNIR)",
        mark=(result["fpir_at_threshold"], result["fnir_at_threshold"] or 0.0),
        verticals=m.FPIR_POINTS,
    )
    files = {
        "det_png": str(det),
        "report_md": str(out_dir / "report.md"),
        "result_json": str(out_dir / "result.json"),
    }
    full = {**result, **files, "curve": curve.as_dict()}
    full["scores"] = {
        "lower_is_better": o.lower_is_better,
        "mated": [
            [None if not math.isfinite(s) else round(float(s), 6), int(r)]
            for s, r in zip(o.mate_scores, o.mate_ranks, strict=True)
        ],
        "nonmated_top": [None if not math.isfinite(s) else round(float(s), 6) for s in o.nonmated_top],
        **impostor_summary(impostor_native, o.lower_is_better),
    }
    Path(files["result_json"]).write_text(json.dumps(m.clean_json(full), indent=1))
    Path(files["report_md"]).write_text(_markdown(result, files))
    return files


def _set_name(dataset: str) -> str:
    """'deepface_testset' for '.../deepface_testset/images': the folder that names the set."""
    p = Path(dataset)
    return p.parent.name if p.name == "images" and p.parent.name else p.name


def _fmt(v: Any) -> str:
    if v is None:
        return "unresolved"
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def _own_fnir(g: dict[str, Any], rate: str) -> str:
    """A group's own FNIR at an FPIR, telling too few non-mated searches apart from no mated ones."""
    v = g["fnir_at_fpir"].get(rate)
    if v is None and rate not in g.get("unresolved", []):
        return "n/a"
    return _fmt(v)


def _markdown(r: dict[str, Any], files: dict[str, str]) -> str:
    fnir = ", ".join(f"FPIR {k}: {_fmt(v)}" for k, v in r["fnir_at_fpir"].items())
    lines = [
        f"# Identification report: {_set_name(r['dataset'])}",
        "",
        f"- gallery: `{r['dataset']}`, {r['gallery_identities']} identities, "
        f"{r['gallery_templates']} templates ({r['enrol_per_id']} per identity, seed {r['seed']}); "
        f"{r['left_out_identities']} identities left out "
        "as non-mated probes" + (f"; distractors `{r['distractors']}`" if r.get("distractors") else ""),
        f"- searches: {r['mated_searches']} mated, {r['nonmated_searches']} non-mated ({r['search']})",
        f"- model: `{r['model']}`, metric {r['metric']}, card threshold {r['threshold']}",
        f"- failures: {r['failed_to_enrol']} enrolment images without a face, {r['failed_probes']} probes "
        f"without a face (counted, never dropped); {r['fell_back']} centre-crop fallbacks; "
        f"{r['below_quality_gate']} faces below the quality gate (still searched)",
        f"- command: `{r['command']}`" if r.get("command") else "- command: (library call)",
        "",
        "| figure | value |",
        "|---|---|",
        f"| TPIR at card threshold (rank 1) | {_fmt(r['tpir'])} |",
        f"| FPIR at card threshold | {_fmt(r['fpir_at_threshold'])} |",
        f"| rank-1 identification rate (no threshold) | {_fmt(r['rank1'])} |",
        f"| FNIR at | {fnir} |",
        "",
        "FNIR at an FPIR is *unresolved* when there are fewer than 1/FPIR non-mated searches.",
        "",
    ]
    if r.get("groups"):
        lines += [
            "| group | mated | non-mated | TPIR | FNIR | FPIR | rank 1 |",
            "|---|---|---|---|---|---|---|",
        ]
        for g in r["groups"]:
            lines.append(
                f"| {g['group']} | {g['mated_searches']} | {g['nonmated_searches']} | {_fmt(g['tpir'])} | "
                f"{_fmt(g['fnir'])} | {_fmt(g['fpir'])} | {_fmt(g['rank1'])} |"
            )
        rates = list(r["fnir_at_fpir"])
        lines += [
            "",
            "FNIR at each FPIR: within the group's own searches / at the threshold that gives the whole set "
            "that FPIR (FPIR of the group at that threshold in brackets). Within a group, *unresolved* means "
            "fewer than 1/FPIR of its own non-mated searches; *n/a*, no mated searches.",
            "",
            "| group | " + " | ".join(f"FPIR {k}" for k in rates) + " |",
            "|---|" + "---|" * len(rates),
        ]
        for g in r["groups"]:
            cells = [
                f"{_own_fnir(g, k)} / {_fmt(g['fnir_at_overall_fpir'].get(k))} "
                f"({_fmt(g['fpir_at_overall_fpir'].get(k))})"
                for k in rates
            ]
            lines.append(f"| {g['group']} | " + " | ".join(cells) + " |")
        lines += [
            "",
            "| largest differential | highest | lowest | difference | ratio |",
            "|---|---|---|---|---|",
        ]
        for d in r.get("largest_differential", []):
            if d.get("difference") is None:
                lines.append(
                    f"| {d['rate'].upper()} | unresolved ({len(d['groups_compared'])} groups) | | | |"
                )
                continue
            ratio = _fmt(d["ratio"]) if d.get("ratio") is not None else "n/a"  # lowest rate is 0
            lines.append(
                f"| {d['rate'].upper()} | {d['highest_group']} {_fmt(d['highest'])} | "
                f"{d['lowest_group']} {_fmt(d['lowest'])} | {_fmt(d['difference'])} | {ratio} |"
            )
        lines.append("")
        if r.get("differential_intervals"):
            lines += _interval_tables(r["differential_intervals"])
    lines += [f"![DET]({Path(files['det_png']).name})", ""]
    return "\n".join(lines)


def _iv(iv: dict[str, Any] | None) -> str:
    """'0.1234 [0.1000, 0.1500]': an estimate with its bootstrap interval."""
    if not iv or iv.get("estimate") is None:
        return "n/a"
    if iv.get("low") is None or iv.get("high") is None:
        return _fmt(iv["estimate"])
    return f"{iv['estimate']:.4f} [{iv['low']:.4f}, {iv['high']:.4f}]"


def _interval_tables(d: dict[str, Any]) -> list[str]:
    """Per-group intervals and the significance of each difference (lfr.evaluation.bootstrap)."""
    labels = list(d["groups"][0]["fnir_at_overall_fpir"]) if d["groups"] else []
    pct = round(100 * d["confidence"])
    lines = [
        f"{pct} % confidence intervals: {d['resamples']} bootstrap resamples over identities (seed "
        f"{d['seed']}), stratified by group; a difference is *significant* when its interval excludes 0; "
        f"p from a permutation test over identity labels ({d['permutations']} relabellings). Columns: at the "
        f"threshold in use ({d['threshold']:g}), then at the threshold giving the whole set each FPIR.",
        "",
        "| group | identities (mated / non-mated) | FNIR | FPIR | "
        + " | ".join(f"FNIR / FPIR at overall FPIR {k}" for k in labels)
        + " |",
        "|---|---|---|---|" + "---|" * len(labels),
    ]
    for g in d["groups"]:
        cells = [f"{_iv(g['fnir_at_overall_fpir'][k])} / {_iv(g['fpir_at_overall_fpir'][k])}" for k in labels]
        lines.append(
            f"| {g['group']} | {g['mated_identities']} / {g['nonmated_identities']} | {_iv(g['fnir'])} | "
            f"{_iv(g['fpir'])} | " + " | ".join(cells) + (" |" if cells else "|")
        )
    lines += [
        "",
        "| rate | difference (A - B) | estimate [interval] | significant | permutation p |",
        "|---|---|---|---|---|",
    ]
    for c in d["comparisons"]:
        sig = {True: "**yes**", False: "no", None: "n/a"}[c["significant"]]
        p = "n/a" if c["permutation_p"] is None else f"{c['permutation_p']:.3f}"
        pair = f"{c['group_a']} - {c['group_b']}"
        lines.append(f"| {c['rate'].upper()} | {pair} | {_iv(c['difference'])} | {sig} | {p} |")
    lines.append("")
    return lines
