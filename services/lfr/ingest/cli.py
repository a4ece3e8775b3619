"""Operator commands for ingest: ``lfr cameras check|status``.

``lfr cameras status`` reads the per-camera status that every running ingest replica writes to Redis
(``<prefix>ingest:camera:<camera_id>``, refreshed every 2 s, expiring after 15 s), so one command covers
all replicas and a camera whose replica is gone shows "no report".
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from redis.exceptions import RedisError

from lfr.core.cli import cli_settings
from lfr.core.config import ConfigError, Settings
from lfr.ingest.cameras import CameraConfigError, load_cameras, shard_of

cameras_app = typer.Typer(help="Cameras: validate the list, see the shards, see each camera's health.")


def _cameras(settings: Settings, path: Path | None) -> list[Any]:
    try:
        return load_cameras(settings, path)
    except CameraConfigError as exc:
        typer.echo(f"lfr: {exc}", err=True)
        raise typer.Exit(2) from None


@cameras_app.command("check")
def cameras_check(
    file: Annotated[Path | None, typer.Option("--file", "-f", help="default: ingest.cameras_file")] = None,
    replicas: Annotated[int | None, typer.Option(min=1, help="default: ingest.replicas")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Validate the cameras file and show which replica analyses each camera."""
    s = cli_settings()
    cams = _cameras(s, file)
    n = replicas or s.ingest.replicas
    rows = [
        {
            "camera_id": c.camera_id,
            "deployment_id": c.deployment_id,
            "kind": c.kind,
            "url": c.safe_url,
            "analyse_fps": c.fps(s),
            "replica": shard_of(c.camera_id, n),
        }
        for c in cams
    ]
    if as_json:
        typer.echo(json.dumps({"replicas": n, "cameras": rows}, indent=2))
        return
    typer.echo(f"{len(rows)} camera(s) valid; {n} replica(s)")
    for r in rows:
        typer.echo(f"  replica {r['replica']:>3}  {r['camera_id']:24s} {r['kind']:6s} {r['url']}")


async def _read_status(settings: Settings, camera_ids: list[str]) -> dict[str, dict[str, Any] | None]:
    from lfr.core.redis_client import make_redis
    from lfr.ingest.status import read_status

    redis = make_redis(settings)
    try:
        return await read_status(redis, settings, camera_ids)
    finally:
        await redis.aclose()


@cameras_app.command("status")
def cameras_status(
    file: Annotated[Path | None, typer.Option("--file", "-f", help="default: ingest.cameras_file")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Per-camera health reported by the running ingest replicas; exit 1 if any camera is not delivering."""
    s = cli_settings()
    cams = _cameras(s, file)
    try:
        status = asyncio.run(_read_status(s, [c.camera_id for c in cams]))
    except (ConfigError, RedisError, OSError) as exc:
        typer.echo(f"lfr: cannot read camera status from Redis: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(2) from None
    healthy = all(doc is not None and doc.get("connected") for doc in status.values())
    if as_json:
        typer.echo(json.dumps({"healthy": healthy, "cameras": status}, indent=2))
        raise typer.Exit(0 if healthy else 1)
    header = (
        f"{'camera':24s} {'replica':>7} {'state':11s} {'in fps':>6} {'an fps':>6} {'age s':>6} {'reconn':>6}"
    )
    typer.echo(header + "  last error")
    for c in cams:
        doc = status.get(c.camera_id)
        if doc is None:
            typer.echo(f"{c.camera_id:24s} {'-':>7} {'no report':11s}")
            continue
        age = doc.get("last_frame_age_s")
        typer.echo(
            f"{c.camera_id:24s} {doc.get('replica', '-'):>7} {doc.get('state', '?'):11s} "
            f"{doc.get('input_fps', 0):>6} {doc.get('analysed_fps', 0):>6} "
            f"{'-' if age is None else age:>6} {doc.get('reconnects', 0):>6}  {doc.get('last_error', '')}"
        )
    raise typer.Exit(0 if healthy else 1)
