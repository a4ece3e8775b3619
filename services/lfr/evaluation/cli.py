"""CLI for accuracy evaluation and threshold governance: ``lfr eval ...`` and ``lfr threshold ...``.

Figures go to stdout (one JSON object with ``--json``, a short summary otherwise); progress bars and
warnings go to stderr so that ``--json`` output can be piped. Nothing here needs the running stack.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from lfr.core.cli import cli_settings
from lfr.evaluation.embedding import TightPolicy

eval_app = typer.Typer(help="Measure the models' accuracy on labelled face data.", no_args_is_help=True)
threshold_app = typer.Typer(help="Threshold governance: what threshold a target needs.", no_args_is_help=True)


def _command() -> str:
    return "lfr " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def _emit(result: dict[str, Any], as_json: bool, keys: tuple[str, ...]) -> None:
    failed = int(result.get("failed_to_enrol") or 0) + int(result.get("failed_probes") or 0)
    if failed:
        typer.echo(
            f"note: {failed} images had no usable face; they are counted as failures, not dropped", err=True
        )
    if as_json:
        typer.echo(json.dumps(result))
        return
    for k in keys:
        if k in result:
            typer.echo(f"{k:28s} {result[k]}")
    for k in ("report_md", "result_json"):
        if k in result:
            typer.echo(f"{k:28s} {result[k]}")


def _fail(exc: Exception) -> typer.Exit:
    typer.echo(f"lfr: {exc}", err=True)
    return typer.Exit(2)


@eval_app.command("verify")
def verify_cmd(
    pairs: Annotated[Path, typer.Option("--pairs", help="CSV of labelled pairs: img_a,img_b,same[,fold]")],
    root: Annotated[Path, typer.Option("--root", help="folder the image paths in the CSV are relative to")],
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
    out: Annotated[
        Path | None, typer.Option("--out", help="write result.json, report.md, roc.png, det.png")
    ] = None,
    tight: Annotated[str, typer.Option("--tight", help="tight-crop handling: auto|always|never")] = "auto",
    sample: Annotated[int | None, typer.Option("--sample", help="seeded random subset of N pairs")] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    all_impostors: Annotated[
        bool, typer.Option("--all-impostors", help="also score every pair of images of different people")
    ] = False,
) -> None:
    """1:1 verification figures at the model card threshold, with TAR at FAR 1e-3 / 1e-4 when resolvable."""
    from lfr.evaluation.datasets import DatasetError
    from lfr.evaluation.verify import run_verify

    try:
        result = run_verify(
            cli_settings(),
            pairs,
            root,
            tight=_tight(tight),
            sample=sample,
            seed=seed,
            out_dir=out,
            progress=sys.stderr.isatty(),
            command=_command(),
            all_impostors=all_impostors,
        )
    except DatasetError as exc:
        raise _fail(exc) from None
    _emit(
        result,
        as_json,
        (
            "pairs",
            "failed_to_enrol",
            "fell_back",
            "threshold",
            "accuracy",
            "tar_at_far_1e-3",
            "tar_at_far_1e-4",
            "best_threshold",
            "cv_accuracy",
        ),
    )


@eval_app.command("identify")
def identify_cmd(
    root: Annotated[Path, typer.Option("--root", help="ROOT/<identity>/<image> folders")],
    enrol_per_id: Annotated[
        int, typer.Option("--enrol-per-id", min=1, help="gallery images per identity")
    ] = 1,
    distractors: Annotated[
        Path | None, typer.Option("--distractors", help="folder of images of people not in the gallery")
    ] = None,
    max_distractors: Annotated[int | None, typer.Option("--max-distractors", help="seeded subset")] = None,
    groups: Annotated[
        Path | None, typer.Option("--groups", help="CSV identity,group for per-group figures")
    ] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
    out: Annotated[Path | None, typer.Option("--out", help="write result.json, report.md, det.png")] = None,
    tight: Annotated[str, typer.Option("--tight", help="tight-crop handling: auto|always|never")] = "auto",
    cache: Annotated[
        Path | None, typer.Option("--cache", help="keep embeddings in this folder between runs")
    ] = None,
    enrol_glob: Annotated[
        str | None,
        typer.Option("--enrol-glob", help="enrol only images whose file name matches, e.g. frontal_*"),
    ] = None,
    probe_glob: Annotated[
        str | None, typer.Option("--probe-glob", help="search only probes whose file name matches")
    ] = None,
    enrol_pool: Annotated[
        int | None,
        typer.Option("--enrol-pool", help="keep N enrol-eligible images per identity out of the probes"),
    ] = None,
) -> None:
    """Open-set 1:N figures: TPIR at the card threshold, rank 1, FNIR at FPIR 0.003 / 0.001 / 1/6000."""
    from lfr.evaluation.datasets import DatasetError
    from lfr.evaluation.identify import run_identify

    try:
        result = run_identify(
            cli_settings(),
            root,
            enrol_per_id=enrol_per_id,
            distractors=distractors,
            groups_file=groups,
            seed=seed,
            max_distractors=max_distractors,
            tight=_tight(tight),
            out_dir=out,
            progress=sys.stderr.isatty(),
            command=_command(),
            cache_dir=cache,
            enrol_glob=enrol_glob,
            probe_glob=probe_glob,
            enrol_pool=enrol_pool,
        )
    except (DatasetError, ValueError) as exc:
        raise _fail(exc) from None
    _emit(
        result,
        as_json,
        (
            "mated_searches",
            "nonmated_searches",
            "failed_to_enrol",
            "threshold",
            "tpir",
            "fpir_at_threshold",
            "rank1",
            "fnir_at_fpir",
        ),
    )


@eval_app.command("tracks")
def tracks_cmd(
    root: Annotated[Path, typer.Option("--root", help="ROOT/<identity>/<image> folders")],
    track_len: Annotated[int, typer.Option("--track-len", min=1, help="photos per simulated track")] = 3,
    enrol_per_id: Annotated[int, typer.Option("--enrol-per-id", min=1)] = 1,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    enrol_glob: Annotated[str | None, typer.Option("--enrol-glob")] = None,
    probe_glob: Annotated[str | None, typer.Option("--probe-glob")] = None,
    cache: Annotated[Path | None, typer.Option("--cache", help="keep embeddings here between runs")] = None,
    tight: Annotated[str, typer.Option("--tight", help="tight-crop handling: auto|always|never")] = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
    draws: Annotated[
        int, typer.Option("--draws", min=1, help="cut each person's probes into tracks this many times")
    ] = 1,
    thresholds: Annotated[
        str, typer.Option("--thresholds", help="also FPIR and TPIR per rule at these, e.g. 0.46,0.58")
    ] = "",
    switches: Annotated[
        int,
        typer.Option("--switches", min=0, help="rounds of simulated identity switches (A, A, then B)"),
    ] = 0,
) -> None:
    """Open-set figures per simulated track (several photos of one person): per crop, any crop, fused."""
    from lfr.evaluation.datasets import DatasetError
    from lfr.evaluation.tracks import run_tracks

    try:
        result = run_tracks(
            cli_settings(),
            root,
            track_len=track_len,
            enrol_per_id=enrol_per_id,
            seed=seed,
            enrol_glob=enrol_glob,
            probe_glob=probe_glob,
            tight=_tight(tight),
            cache_dir=cache,
            progress=sys.stderr.isatty(),
            command=_command(),
            draws=draws,
            thresholds=_threshold_list(thresholds),
            switches=switches,
        )
    except (DatasetError, ValueError) as exc:
        raise _fail(exc) from None
    if as_json:
        typer.echo(json.dumps(result))
        return
    for rule, r in result["rules"].items():
        fnir = ", ".join(f"{k}: {v if v is None else round(v, 4)}" for k, v in r["fnir_at_fpir"].items())
        typer.echo(f"{rule:12s} {r['unit']}s {r['mated']}/{r['nonmated']}  FNIR at FPIR {fnir}")


@eval_app.command("calibrate")
def calibrate_cmd(
    root: Annotated[Path, typer.Option("--root", help="ROOT/<identity>/<image> folders (open-set dev set)")],
    thresholds: Annotated[str, typer.Option("--thresholds", help="comma list, e.g. 0.3,0.35,0.4")],
    cache: Annotated[Path | None, typer.Option("--cache", help="keep embeddings here between runs")] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    person_searches: Annotated[
        int | None,
        typer.Option(
            "--person-searches",
            min=1,
            help="searches per person passing for the fmr_person figures (default: "
            "ingest.best_shot_max_per_track)",
        ),
    ] = None,
    draws: Annotated[
        int, typer.Option("--draws", min=1, help="times each person's photos are cut into tracks")
    ] = 5,
) -> None:
    """FMR per comparison (all impostor pairs), FMR per person passing (simulated tracks searched as the
    live embedder does) and TPIR at each threshold (a card's calibration figures), and the FMR and genuine
    match rate by the quality gate's verdict on the probe (`by_gate`)."""
    from lfr.evaluation.calibrate_card import run_calibrate
    from lfr.evaluation.datasets import DatasetError

    try:
        result = run_calibrate(
            cli_settings(),
            root,
            list(_threshold_list(thresholds)),
            cache_dir=cache,
            seed=seed,
            person_searches=person_searches,
            draws=draws,
        )
    except (DatasetError, ValueError) as exc:
        raise _fail(exc) from None
    typer.echo(json.dumps(result))


@threshold_app.command("recommend")
def recommend_cmd(
    eval_result: Annotated[Path, typer.Option("--eval", help="result.json written by `lfr eval ... --out`")],
    target_fpir: Annotated[
        str, typer.Option("--target-fpir", help="false alerts per person passing, e.g. 1/6000")
    ],
    watchlist_size: Annotated[int, typer.Option("--watchlist-size", min=1, help="images on the watchlists")],
    searches_per_person: Annotated[
        int | None,
        typer.Option(
            "--searches-per-person",
            min=1,
            help="times a live camera searches one person (default: ingest.best_shot_max_per_track; "
            "1 gives the rate per search)",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The threshold meeting a false-alert target per person passing for a watchlist size, with the rates
    to expect."""
    from lfr.evaluation.threshold import RecommendError, load_result, parse_rate, recommend

    k = searches_per_person or cli_settings().ingest.best_shot_max_per_track
    try:
        result = recommend(load_result(eval_result), parse_rate(target_fpir), watchlist_size, k)
    except RecommendError as exc:
        raise _fail(exc) from None
    if as_json:
        typer.echo(json.dumps(result))
        return
    typer.echo(f"threshold {result['threshold']:.4f} ({result['metric']}, {result['method']})")
    typer.echo(
        "expected false alerts per 10,000 people passing: "
        f"{result['expected_false_alerts_per_10000_people']:.3g} "
        f"(upper 95% bound from the data alone: {result['false_alerts_per_10000_people_upper_95']:.3g}; "
        f"{result['person_basis']})"
    )
    typer.echo(
        "expected false alerts per 10,000 searches: "
        f"{result['expected_false_alerts_per_10000_searches']:.3g} "
        f"(upper 95% bound: {result['false_alerts_per_10000_searches_upper_95']:.3g})"
    )
    tpir = result["expected_tpir"]
    typer.echo(f"expected TPIR: {'unknown' if tpir is None else f'{tpir:.4f}'} ({result['tpir_basis']})")
    for note in result["notes"]:
        typer.echo(f"note: {note}")


def _threshold_list(text: str) -> tuple[float, ...]:
    """``--thresholds 0.46,0.58`` as numbers (a ValueError names the bad entry)."""
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise ValueError(f"--thresholds must be a comma list of numbers, got {text!r}") from None


def _tight(value: str) -> TightPolicy:
    if value not in ("auto", "always", "never"):
        typer.echo(f"lfr: --tight must be auto, always or never, not {value!r}", err=True)
        raise typer.Exit(2)
    return value  # type: ignore[return-value]
