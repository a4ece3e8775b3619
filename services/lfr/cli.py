"""The `lfr` command: one entry point for every service, the local stack and the operators' tools.

Sub-command groups live next to the code they drive (``lfr.<service>.cli``); this module only mounts them
and owns the global ``--config`` option, so each service keeps its own small composition root.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
import yaml

from lfr.core.cli import cli_settings
from lfr.core.config import get_settings, masked_dump

app = typer.Typer(
    name="lfr",
    help="LFR: live and retrospective facial recognition for police deployments.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
stack_app = typer.Typer(
    help="The embedded single-machine stack: broker (and its S3 storage), Redis, crop key store, Milvus.",
    no_args_is_help=True,
)
config_app = typer.Typer(help="Effective configuration.", no_args_is_help=True)
topics_app = typer.Typer(help="Kafka topic provisioning.", no_args_is_help=True)
app.add_typer(stack_app, name="stack")
app.add_typer(config_app, name="config")
app.add_typer(topics_app, name="topics")


@app.callback()
def _global(
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="YAML settings file (also LFR_CONFIG).")
    ] = None,
) -> None:
    if config is not None:
        import os

        os.environ["LFR_CONFIG"] = str(config)
        get_settings.cache_clear()


# ---- config ---------------------------------------------------------------------------------------------
@config_app.command("show")
def config_show(
    as_json: Annotated[bool, typer.Option("--json")] = False,
    doc: Annotated[
        bool, typer.Option("--doc", help="the documented tree (key, type, default, description) instead")
    ] = False,
    markdown: Annotated[
        bool, typer.Option("--markdown", help="with --doc: the README's settings table")
    ] = False,
) -> None:
    """Print the effective settings with every secret masked (or, with --doc, what each setting means)."""
    if doc or markdown:
        from lfr.core.config_doc import render_markdown, render_tree, settings_doc

        docs = settings_doc()
        typer.echo(render_markdown(docs) if markdown else render_tree(docs), nl=False)
        return
    doc_tree = masked_dump(cli_settings())
    typer.echo(json.dumps(doc_tree, indent=2) if as_json else yaml.safe_dump(doc_tree, sort_keys=False))


# ---- stack ----------------------------------------------------------------------------------------------
@stack_app.command("up")
def stack_up(
    milvus: Annotated[
        str | None, typer.Option("--milvus", help="lite or standalone (default: stack.milvus)")
    ] = None,
    broker_storage: Annotated[
        str | None,
        typer.Option("--broker-storage", help="s3 (durable) or memory (default: stack.broker_storage)"),
    ] = None,
) -> None:
    """Start the broker, Redis, the crop key store and Milvus on free loopback ports; provision topics."""
    from lfr.stack.local import LocalStack, StackError

    chosen = {k: v for k, v in (("milvus", milvus), ("broker_storage", broker_storage)) if v is not None}
    base = cli_settings()
    try:
        settings = base.model_validate({**base.model_dump(), "stack": {**base.stack.model_dump(), **chosen}})
    except ValueError:
        typer.echo("lfr stack up: --milvus takes lite or standalone, --broker-storage s3 or memory", err=True)
        raise typer.Exit(2) from None
    stack = LocalStack(settings)
    try:
        state = stack.up()
    except StackError as exc:
        typer.echo(f"lfr stack up failed: {exc}", err=True)
        raise typer.Exit(1) from None
    for name in stack.components():
        entry = state[name]
        what = entry.get("storage") or entry.get("persistence") or entry.get("kind", "")
        typer.echo(f"{name:8s} {entry['url']}  (pid {entry['pid']}; {what})")


@stack_app.command("status")
def stack_status(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Health of each stack component; exit 1 when any is unhealthy."""
    from lfr.stack.local import LocalStack

    st = LocalStack(cli_settings()).status()
    if as_json:
        typer.echo(json.dumps(st))
    else:
        for name in st["components"]:
            c = st[name]
            what = "; ".join(str(c[k]) for k in ("kind", "storage", "persistence") if c.get(k))
            typer.echo(f"{name:8s} {'healthy' if c['healthy'] else 'DOWN':8s} {c.get('url', '')}  {what}")
    raise typer.Exit(0 if st["healthy"] else 1)


@stack_app.command("down")
def stack_down() -> None:
    """Stop exactly the processes `lfr stack up` started."""
    from lfr.stack.local import LocalStack

    stopped = LocalStack(cli_settings()).down()
    typer.echo(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")


# ---- topics ---------------------------------------------------------------------------------------------
@topics_app.command("create")
def topics_create() -> None:
    """Create every topic with its configured partitions, retention and cleanup policy (idempotent)."""
    from lfr.core.bus import ensure_topics, wait_for_broker

    s = cli_settings()

    async def go() -> dict[str, str]:
        await wait_for_broker(s, timeout_s=60)
        return await ensure_topics(s)

    for name, outcome in asyncio.run(go()).items():
        typer.echo(f"{name:24s} {outcome}")


@topics_app.command("list")
def topics_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The topics table: partitions, key, retention, cleanup policy."""
    from lfr.core.topics import topic_specs

    specs = topic_specs(cli_settings())
    rows = [
        {
            "topic": s.name,
            "partitions": s.partitions,
            "key": s.key,
            "retention_ms": s.retention_ms,
            "cleanup_policy": s.cleanup_policy,
            "description": s.description,
        }
        for s in specs
    ]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        line = f"{r['topic']:24s} {r['partitions']:>4} {r['retention_ms']:>12} {r['cleanup_policy']:8s}"
        typer.echo(f"{line} {r['key']}")


# ---- services -------------------------------------------------------------------------------------------
@app.command("embed")
def embed() -> None:
    """Run an embedding worker: crops -> embeddings -> watchlist search -> hits."""
    from lfr.core.service import run_service
    from lfr.embedder.service import main

    run_service(cli_settings(), "embedder", main)


@app.command("api")
def api() -> None:
    """Run the API and operator console."""
    from lfr.api.app import main
    from lfr.core.service import run_service

    run_service(cli_settings(), "api", main)


def _mount_optional() -> None:
    """Mount the service groups; each lives beside its service code."""
    from lfr.admin import cli as watchlist_cli
    from lfr.alerting import cli as alerting_cli
    from lfr.bench.cli import bench_app
    from lfr.contracts.cli import contracts_app
    from lfr.evaluation import cli as eval_cli
    from lfr.ingest import cli as ingest_cli
    from lfr.modelbuild import cli as models_cli
    from lfr.monitor import cli as monitor_cli
    from lfr.redact import cli as redact_cli
    from lfr.retro import cli as retro_cli

    app.add_typer(models_cli.app, name="models", help="Build and list face models.")
    app.command("status")(monitor_cli.status_command)
    app.command("monitor")(monitor_cli.monitor_command)
    app.add_typer(bench_app, name="bench")
    app.add_typer(watchlist_cli.watchlist_app, name="watchlist")
    app.add_typer(watchlist_cli.deployment_app, name="deployment")
    app.add_typer(watchlist_cli.audit_app, name="audit")
    app.add_typer(alerting_cli.webhooks_app, name="webhooks")
    app.add_typer(alerting_cli.report_app, name="report")
    app.add_typer(contracts_app, name="contracts")
    app.add_typer(ingest_cli.cameras_app, name="cameras")
    app.add_typer(eval_cli.eval_app, name="eval")
    app.add_typer(eval_cli.threshold_app, name="threshold")
    app.add_typer(retro_cli.gallery_app, name="gallery")
    app.command("search")(retro_cli.search_command)
    app.command("redact")(redact_cli.redact_command)


@app.command("ingest")
def ingest() -> None:
    """Run a frame-ingest worker for this replica's shard of the cameras."""
    from lfr.core.service import run_service
    from lfr.ingest.service import main

    run_service(cli_settings(), "ingest", main)


@app.command("alert")
def alert() -> None:
    """Run an alerting worker: hits -> deduplicated alerts -> topics, webhooks, consoles."""
    from lfr.alerting.service import main
    from lfr.core.service import run_service

    run_service(cli_settings(), "alerting", main)


@app.command("demo")
def demo(
    duration: Annotated[
        float | None, typer.Option("--duration", envvar="LFR_DEMO_DURATION", help="stop after S seconds")
    ] = None,
    video: Annotated[
        Path | None, typer.Option("--video", help="real footage instead of the sample scene")
    ] = None,
    watchlist: Annotated[
        Path | None, typer.Option("--watchlist", help="folder per person to enrol (with --video)")
    ] = None,
) -> None:
    """Run the whole pipeline on embedded defaults and print alerts as they arrive."""
    from lfr.demo.runner import run_demo

    raise typer.Exit(run_demo(cli_settings(), duration, video, watchlist))


def main() -> None:
    try:
        _mount_optional()
    except ImportError as exc:  # a broken install must say which part is missing
        typer.echo(f"lfr: incomplete installation: {exc}", err=True)
        sys.exit(2)
    app()


if __name__ == "__main__":
    main()
