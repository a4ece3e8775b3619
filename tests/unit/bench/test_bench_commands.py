"""The benchmark and model commands keep the names users and `make bench` / `make models` call."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from lfr.bench.cli import bench_app
from lfr.modelbuild.cli import app as models_app


def _names(app: typer.Typer) -> set[str]:
    return {c.name or "" for c in app.registered_commands}


def test_bench_commands() -> None:
    assert _names(bench_app) == {
        "models",
        "ingest",
        "search",
        "gallery",
        "redact",
        "pipeline",
        "gallery-import",
    }


def test_models_commands() -> None:
    assert _names(models_app) == {"build", "quantize", "list"}


def test_lfr_mounts_them_under_the_same_names() -> None:
    from lfr import cli

    cli._mount_optional()
    runner = CliRunner()
    for args, expected in ((["bench", "--help"], "gallery"), (["models", "--help"], "quantize")):
        r = runner.invoke(cli.app, args)
        assert r.exit_code == 0 and expected in r.output, r.output
