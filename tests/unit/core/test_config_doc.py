"""The documented settings tree: every field described, the CLI prints it, the README table is its copy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from lfr.cli import app
from lfr.core.config import load_settings, masked_dump
from lfr.core.config_doc import readme_table, render_markdown, settings_doc, undocumented, with_table

README = Path(__file__).resolve().parents[3] / "README.md"


def _keys(tree: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for k, v in tree.items():
        out.append(prefix + k)
        if isinstance(v, dict) and k not in ("index_params", "search_params", "previous_alert_keys"):
            out.extend(_keys(v, f"{prefix}{k}."))
    return out


def test_every_settings_field_has_a_description() -> None:
    assert undocumented() == [], "add Field(description=...) to these settings"


def test_the_documented_keys_are_exactly_the_settable_ones() -> None:
    documented = [d.key for d in settings_doc() if "[]" not in d.key]
    assert documented == _keys(masked_dump(load_settings()))


def test_types_and_defaults_read_from_the_classes() -> None:
    docs = {d.key: d for d in settings_doc()}
    assert (docs["kafka.acks"].type, docs["kafka.acks"].default) == ('"all" | "1" | "0"', "all")
    assert (docs["kafka.bootstrap_servers"].default, docs["data_dir"].default) == ('""', ".lfr")
    assert (docs["detector.thresholds"].type, docs["detector.thresholds"].default) == (
        "tuple[float, float, float]",
        "[0.6, 0.7, 0.7]",
    )
    assert docs["detector.yunet"].section and docs["detector.yunet.score_threshold"].depth == 2
    assert docs["crypto.alert_key"].type == "secret | none"
    assert docs["api.api_keys"].type == "list[ApiKey]" and docs["api.api_keys[].key"].default == "required"


def test_defaults_do_not_follow_the_environment(monkeypatch: Any) -> None:
    monkeypatch.setenv("LFR_KAFKA__LINGER_MS", "77")
    assert load_settings().kafka.linger_ms == 77
    assert next(d for d in settings_doc() if d.key == "kafka.linger_ms").default == "5"


def test_config_show_doc_prints_the_tree_and_the_markdown_table() -> None:
    runner = CliRunner()
    tree = runner.invoke(app, ["config", "show", "--doc"])
    assert tree.exit_code == 0, tree.output
    assert '\n  bootstrap_servers (str, default ""): host:port list' in tree.output
    table = runner.invoke(app, ["config", "show", "--doc", "--markdown"])
    assert table.exit_code == 0, table.output
    assert table.output == render_markdown(settings_doc())


def test_readme_settings_table_is_the_generated_one() -> None:
    text = README.read_text(encoding="utf-8")
    assert readme_table(text) == render_markdown(settings_doc()), (
        "README settings table is stale: run `make settings-table`"
    )
    assert with_table(text, render_markdown(settings_doc())) == text
