"""The ``lfr bench`` commands: every benchmark, each printing its figures (one JSON object with ``--json``).

Heavy imports wait inside each command, so ``lfr --help`` and the other commands never load a benchmark.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from lfr.core.cli import cli_settings
from lfr.core.shared_data import shared_faces_dir

bench_app = typer.Typer(help="Benchmarks that print figures as JSON.", no_args_is_help=True)


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"lfr: {message}", err=True)
    return typer.Exit(code)


@bench_app.command("models")
def bench_models_cmd(
    as_json: bool = typer.Option(False, "--json", help="print only the JSON object"),
    repeat: int = typer.Option(15, min=3, help="timed runs per figure"),
    faces_dir: Path | None = typer.Option(
        None, help="the shared faces folder (default ../shared/data/faces)"
    ),
    embedder: str | None = typer.Option(
        None, help="embedder card to time instead of models.embedder (e.g. dlib-resnet-v1-int8)"
    ),
) -> None:
    """Detection and embedding latency (median, one thread) and detection recall on the test video."""
    from lfr.bench.models import run_model_bench
    from lfr.vision.cards import CardError

    settings = cli_settings()
    if embedder:
        settings = settings.model_copy(
            update={"models": settings.models.model_copy(update={"embedder": embedder})}
        )
    try:
        result = run_model_bench(settings, repeat=repeat, faces_dir=faces_dir)
    except CardError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(result))
        return
    typer.echo(json.dumps(result, indent=2))


@bench_app.command("ingest")
def bench_ingest_command(
    seconds: Annotated[float, typer.Option(min=2.0, help="wall-clock seconds to run")] = 20.0,
    faces_dir: Annotated[
        Path | None, typer.Option(help="the shared faces folder (default ../shared/data/faces)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
    motion_gating: Annotated[
        bool | None,
        typer.Option("--motion-gating/--no-motion-gating", help="override ingest.motion_gating for this run"),
    ] = None,
    video: Annotated[
        Path | None, typer.Option(help="footage to loop instead of the street video (e.g. a fixed camera)")
    ] = None,
) -> None:
    """Cameras per core (1080p, analysed at 5 fps, one thread) and crops per track, on the street video."""
    from lfr.bench.ingest import BenchError, bench_ingest

    try:
        result = bench_ingest(
            cli_settings(), seconds=seconds, faces_dir=faces_dir, motion_gating=motion_gating, video=video
        )
    except BenchError as exc:
        typer.echo(f"lfr: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(json.dumps(result) if as_json else json.dumps(result, indent=2))


def _default_faces() -> Path | None:
    """Real faces for the benchmarks' galleries: the shared LFW images when present."""
    guess = shared_faces_dir() / "lfw_pairs_dev" / "images"
    return guess if guess.is_dir() else None


@bench_app.command("search")
def bench_search(
    subjects: Annotated[int, typer.Option("--subjects", min=10)] = 10_000,
    faces: Annotated[
        Path | None,
        typer.Option("--faces", help="folder of real face images (default: shared LFW set if present)"),
    ] = None,
    real_max: Annotated[int, typer.Option("--real-max", min=0)] = 500,
    queries: Annotated[int, typer.Option("--queries", min=10)] = 200,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Watchlist search latency at N subjects (real faces + synthetic): p50, p99 and batch-of-64 p50."""
    from lfr.bench.search import run_search_bench

    faces = faces or _default_faces()
    result = run_search_bench(
        cli_settings(), subjects=subjects, faces_dir=faces, real_max=real_max, queries=queries
    )
    typer.echo(json.dumps(result) if as_json else "\n".join(f"{k:32s} {v}" for k, v in result.items()))


@bench_app.command("gallery")
def bench_gallery(
    vectors: Annotated[int, typer.Option("--vectors", min=100, help="gallery rows")] = 200_000,
    faces: Annotated[
        Path | None,
        typer.Option("--faces", help="folder of real face images (default: shared LFW set if present)"),
    ] = None,
    real_max: Annotated[int, typer.Option("--real-max", min=0)] = 500,
    queries: Annotated[int, typer.Option("--queries", min=5)] = 100,
    top_k: Annotated[int, typer.Option("--top-k", min=1, max=100)] = 10,
    index: Annotated[
        list[str] | None,
        typer.Option(
            "--index",
            help="TYPE[:key=value...], repeatable or comma-separated, e.g. "
            "FLAT,IVF_FLAT:nlist=1024:nprobe=64,HNSW:M=16:efConstruction=200:ef=128 "
            "(default: the documented comparison)",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print only the JSON object")] = False,
) -> None:
    """Gallery index options at N rows: build time, p50/p99 per query and recall@k against exact search."""
    from lfr.bench import search

    try:
        options = search.parse_index_options(index) if index else None
    except ValueError as exc:
        raise _fail(str(exc)) from None
    faces = faces or _default_faces()
    result = search.run_gallery_bench(
        cli_settings(),
        vectors=vectors,
        faces_dir=faces,
        real_max=real_max,
        queries=queries,
        top_k=top_k,
        options=options,
    )
    if as_json:
        typer.echo(json.dumps(result))
        return
    for k, v in result.items():
        if k != "indexes":
            typer.echo(f"{k:26s} {v}")
    recall_key = f"recall_at_{result['top_k']}"
    for row in result["indexes"]:
        typer.echo(
            f"{row['index_type']:9s} {row['index_params']!s:34s} {row['search_params']!s:16s} "
            f"build {row['build_and_load_s']} s  p50 {row['p50_ms']} ms  p99 {row['p99_ms']} ms  "
            f"recall@{result['top_k']} {row[recall_key]}"
        )


@bench_app.command("redact")
def bench_redact_command(
    video: Annotated[
        Path | None, typer.Option("--video", help="1080p footage (default: the shared street video)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print only the JSON object")] = False,
) -> None:
    """Redaction frames per second at 1080p and 720p on one core (target: >= 12.5 fps at 1080p)."""
    from lfr.bench.redact import BenchError, run_redact_bench

    video = video or shared_faces_dir() / "facenet_pytorch_samples" / "video" / "video.mp4"
    try:
        result = run_redact_bench(cli_settings(), video)
    except BenchError as exc:
        raise _fail(str(exc)) from None
    typer.echo(json.dumps(result) if as_json else json.dumps(result, indent=2))


@bench_app.command("pipeline")
def bench_pipeline_command(
    as_json: Annotated[bool, typer.Option("--json")] = False,
    crops: Annotated[int, typer.Option(help="encrypted crops pushed through the pipeline")] = 1500,
    subjects: Annotated[int, typer.Option(help="watchlist size")] = 1000,
) -> None:
    """End-to-end embedder throughput over raw onnxruntime throughput (`efficiency`, target >= 0.85)."""
    from lfr.bench.pipeline import bench_pipeline

    result = bench_pipeline(cli_settings(), crops=crops, subjects=subjects)
    typer.echo(json.dumps(result) if as_json else "\n".join(f"{k:22s} {v}" for k, v in result.items()))


@bench_app.command("gallery-import")
def bench_gallery_import_command(
    as_json: Annotated[bool, typer.Option("--json")] = False,
    images: Annotated[int, typer.Option(min=10, help="images imported per run (the first N, sorted)")] = 2000,
    workers: Annotated[str, typer.Option(help="worker counts to run, comma-separated")] = "1,2",
    source: Annotated[Path | None, typer.Option(help="image folder (default: the shared CFP images)")] = None,
    cpus: Annotated[
        str | None, typer.Option(help="pin worker i to CPU cpus[i % len], e.g. 0,1 (taskset)")
    ] = None,
) -> None:
    """Distributed gallery import: steady images/s with 1, 2, ... `lfr gallery worker` processes."""
    from lfr.bench.gallery_import import bench_gallery_import

    try:
        counts = tuple(int(w) for w in workers.split(","))
        pinned = [int(c) for c in cpus.split(",")] if cpus else None
    except ValueError:
        raise _fail(
            f"--workers and --cpus take comma-separated integers, not {workers!r} / {cpus!r}"
        ) from None
    if not counts or min(counts) < 1:
        raise _fail("--workers needs counts of at least 1")
    result = bench_gallery_import(cli_settings(), images=images, workers=counts, source=source, cpus=pinned)
    typer.echo(json.dumps(result) if as_json else json.dumps(result, indent=2))
