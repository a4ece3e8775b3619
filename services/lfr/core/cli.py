"""What every ``lfr`` command shares: the settings, with an invalid configuration reported as one line.

Why here: each service's typer app needs the same behaviour (the field named, exit status 2, no
traceback), and the top-level ``lfr.cli`` imports those apps, so they cannot import it back.
"""

from __future__ import annotations

import typer

from lfr.core.config import ConfigError, Settings, get_settings


def cli_settings() -> Settings:
    try:
        return get_settings()
    except ConfigError as exc:
        typer.echo(f"lfr: {exc}", err=True)
        raise typer.Exit(2) from None
