"""CLI for evidence redaction: ``lfr redact``.

``lfr redact`` refuses to run without ``--case`` and ``--reason`` (exit 2, nothing read, nothing
connected); with them it writes the redacted file, a JSON report beside it, optionally a preview of the
tracks, and an audit record.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from lfr.core.cli import cli_settings


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"lfr: {message}", err=True)
    return typer.Exit(code)


def redact_command(
    source: Annotated[Path, typer.Argument(help="a video (any common container) or a still image")],
    out: Annotated[
        Path | None,
        typer.Option("--out", help="the redacted file: .mp4 for video, an image suffix for stills"),
    ] = None,
    case: Annotated[str | None, typer.Option("--case", help="case reference (required)")] = None,
    reason: Annotated[
        str | None, typer.Option("--reason", help="why this redaction is needed (required)")
    ] = None,
    keep_subject: Annotated[
        list[str] | None,
        typer.Option(
            "--keep-subject", help="watchlist subject id to leave visible when recognised (repeatable)"
        ),
    ] = None,
    watchlist: Annotated[
        list[str] | None, typer.Option("--watchlist", help="watchlist holding the kept subjects (repeatable)")
    ] = None,
    keep_track: Annotated[
        list[int] | None, typer.Option("--keep-track", help="track number from the preview to leave visible")
    ] = None,
    style: Annotated[
        str | None, typer.Option("--style", help="blur, pixelate or box (default: redact.style)")
    ] = None,
    preview: Annotated[
        Path | None, typer.Option("--preview", help="write a contact sheet and JSON list of the tracks here")
    ] = None,
    report: Annotated[
        Path | None, typer.Option("--report", help="report path (default: OUTPUT.report.json)")
    ] = None,
    actor: Annotated[
        str | None, typer.Option("--actor", help="who is redacting (default: login name)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Cover every face in a video or still except the kept ones, for a recorded case; audited."""
    from lfr.redact.engine import RedactError
    from lfr.redact.media import MediaError
    from lfr.redact.service import MissingJustificationError, RedactRequest, check_justification, redact_file

    try:
        check_justification(case, reason)
    except MissingJustificationError as exc:
        raise _fail(str(exc)) from None
    settings = cli_settings()
    req = RedactRequest(
        source=source,
        output=out,
        case_ref=case,
        reason=reason,
        actor=actor or getpass.getuser(),
        keep_subjects=keep_subject or [],
        keep_tracks=keep_track or [],
        watchlists=watchlist or [],
        style=style or settings.redact.style,
        preview_dir=preview,
        report_path=report,
    )

    def progress(phase: str, fraction: float) -> None:
        if sys.stderr.isatty():
            typer.echo(f"\r{phase:8s} {fraction * 100:5.1f} %", err=True, nl=False)

    try:
        result = asyncio.run(redact_file(settings, req, progress))
    except (RedactError, MediaError) as exc:
        raise _fail(str(exc)) from None
    if sys.stderr.isatty():
        typer.echo("", err=True)
    if as_json:
        typer.echo(json.dumps(result))
        return
    if "tracks" in result and isinstance(result["tracks"], dict):
        t = result["tracks"]
        typer.echo(
            f"redaction {result['redaction_id']} for case {result['case_ref']}: {t['found']} tracks, "
            f"{len(t['kept'])} kept, {len(t['redacted'])} covered on {result['frames_touched']} of "
            f"{result['input']['frames']} frames"
        )
        typer.echo(f"output {out}  sha256 {result['output']['sha256']}")
        typer.echo(f"report {result['report_path']}")
    else:
        typer.echo(f"preview of {result['tracks']} tracks for case {result['case_ref']}")
    if preview is not None:
        typer.echo(f"preview {preview}")
