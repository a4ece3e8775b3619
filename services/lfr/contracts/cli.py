"""``lfr contracts``: generate (or check) the AsyncAPI document and JSON Schemas for subscribers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

contracts_app = typer.Typer(
    help="Subscriber contracts: AsyncAPI document and JSON Schemas.", no_args_is_help=True
)


@contracts_app.callback()
def _group() -> None:
    """Subscriber contracts: AsyncAPI document and JSON Schemas (docs/subscribers.md)."""


@contracts_app.command("generate")
def generate(
    out_dir: Annotated[
        Path | None, typer.Option("--dir", help="output folder (default docs/subscribers)")
    ] = None,
    check: Annotated[bool, typer.Option("--check", help="write nothing; exit 1 if a file is stale")] = False,
) -> None:
    """Write docs/subscribers/asyncapi.yaml and schemas/*.schema.json from proto/ and the topic list."""
    from lfr.contracts.documents import DEFAULT_DIR, stale, write

    target = out_dir or DEFAULT_DIR
    if check:
        behind = stale(target)
        for rel in behind:
            typer.echo(f"stale: {target / rel}")
        if behind:
            typer.echo("run: lfr contracts generate")
            raise typer.Exit(1)
        typer.echo(f"up to date: {target}")
        return
    for path in write(target):
        typer.echo(str(path))
