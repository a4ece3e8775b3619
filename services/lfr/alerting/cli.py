"""`lfr webhooks ...` (dead letters, replay) and `lfr report ...` (transparency figures).

Both talk to Redis only, so they work while `lfr alert` is running or stopped; a replayed delivery is sent
by whichever alerting worker drains the outbox next. Bad settings exit 2, other failures exit 1.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, TypeVar

import redis.asyncio as aioredis
import typer
from redis.exceptions import RedisError

from lfr.alerting.report import deployment_report, render_csv, render_json
from lfr.alerting.webhooks import Outbox
from lfr.core.cli import cli_settings
from lfr.core.config import ConfigError, Settings
from lfr.core.redis_client import make_redis
from lfr.core.timeutil import iso

T = TypeVar("T")

webhooks_app = typer.Typer(help="Webhook deliveries: dead letters and replay.", no_args_is_help=True)
report_app = typer.Typer(help="Transparency reports.", no_args_is_help=True)


@report_app.callback()
def _report_group() -> None:
    """Transparency reports (a group, so ``lfr report deployment ID`` stays valid as reports are added)."""


class Format(StrEnum):
    csv = "csv"
    json = "json"


def _run(op: Callable[[Settings, aioredis.Redis], Awaitable[T]]) -> T:
    settings = cli_settings()

    async def go() -> T:
        redis = make_redis(settings)
        try:
            return await op(settings, redis)
        finally:
            await redis.aclose()

    try:
        return asyncio.run(go())
    except ConfigError as exc:
        typer.echo(f"lfr: {exc}", err=True)
        raise typer.Exit(2) from None
    except (RedisError, OSError) as exc:
        typer.echo(f"lfr: Redis unavailable: {exc}", err=True)
        raise typer.Exit(1) from None


@webhooks_app.command("list-dead")
def list_dead(
    subscriber: Annotated[str | None, typer.Option("--subscriber", help="only this subscriber")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Deliveries given up after alerting.webhook_max_attempts, oldest first."""
    entries = _run(lambda s, r: Outbox(s, r).list_dead(subscriber))
    if as_json:
        typer.echo(
            json.dumps(
                [
                    {
                        "id": e.id,
                        "subscriber": e.subscriber,
                        "deployment_id": e.deployment_id,
                        "alert_id": e.alert_id,
                        "revision": e.revision,
                        "attempts": e.attempts,
                        "last_error": e.last_error,
                        "dead_at": iso(e.dead_ms) if e.dead_ms else None,
                    }
                    for e in entries
                ],
                indent=2,
            )
        )
        return
    if not entries:
        typer.echo("no dead letters")
        return
    for e in entries:
        typer.echo(
            f"{e.id}  {e.subscriber}  deployment={e.deployment_id}  alert={e.alert_id} rev={e.revision}  "
            f"attempts={e.attempts}  error={e.last_error}  dead_at={iso(e.dead_ms) if e.dead_ms else '-'}"
        )


@webhooks_app.command("replay")
def replay(
    subscriber: Annotated[str | None, typer.Option("--subscriber", help="only this subscriber")] = None,
    ids: Annotated[
        list[str] | None, typer.Option("--id", help="only these delivery ids (repeatable)")
    ] = None,
) -> None:
    """Put dead letters back into the outbox with a fresh attempt budget."""
    n = _run(lambda s, r: Outbox(s, r).replay(subscriber, ids or None))
    typer.echo(f"replayed {n} deliveries")


@report_app.command("deployment")
def report_deployment(
    deployment_id: str,
    fmt: Annotated[Format, typer.Option("--format", "-f", help="csv or json")] = Format.json,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="write to a file")] = None,
) -> None:
    """Faces analysed, alerts, confirmed, rejected, unable to decide, pending; per watchlist category."""
    report = _run(lambda s, r: deployment_report(s, r, deployment_id))
    text = render_csv(report) if fmt is Format.csv else render_json(report) + "\n"
    if output is not None:
        output.write_text(text)
        typer.echo(f"wrote {output}")
    else:
        typer.echo(text, nl=False)
