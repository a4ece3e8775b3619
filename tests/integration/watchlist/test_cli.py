"""`lfr watchlist|deployment|audit` commands against the real stack (in-process, through typer's runner)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from lfr.admin import cli as wl_cli
from lfr.core.config import Settings, get_settings

pytestmark = pytest.mark.integration


@pytest.fixture
def lfr(wl_settings: Settings, monkeypatch: pytest.MonkeyPatch):
    env = {
        "LFR_DATA_DIR": str(wl_settings.data_dir),
        "LFR_KAFKA__BOOTSTRAP_SERVERS": wl_settings.kafka_bootstrap,
        "LFR_REDIS__URL": wl_settings.redis_url,
        "LFR_REDIS__KEY_PREFIX": wl_settings.redis.key_prefix,
        "LFR_MILVUS__URI": wl_settings.milvus_uri,
        "LFR_MILVUS__COLLECTION_PREFIX": wl_settings.milvus.collection_prefix,
        "LFR_MODELS__DIR": str(wl_settings.models_dir),
        "LFR_ACTOR": "pc.cli",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    get_settings.cache_clear()
    purged: list[str] = []
    monkeypatch.setattr(wl_cli, "make_purge_alerts", lambda s, r: lambda d: purged.append(d) or 2)
    app = typer.Typer()
    app.add_typer(wl_cli.watchlist_app, name="watchlist")
    app.add_typer(wl_cli.deployment_app, name="deployment")
    app.add_typer(wl_cli.audit_app, name="audit")
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, list(args), catch_exceptions=False)

    yield invoke, purged
    get_settings.cache_clear()


def test_deployment_commands(lfr, models_dir) -> None:
    from lfr.vision.cards import find_card

    run, purged = lfr
    card = find_card(models_dir, get_settings().models.embedder)
    assert card.threshold_floor is not None
    # A threshold looser than the default card's floor (which way is looser depends on its metric).
    looser = card.threshold_floor + 0.3 if card.metric == "L2" else card.threshold_floor - 0.2
    res = run(
        "deployment",
        "create",
        "--name",
        "Cup final",
        "--location",
        "North gate",
        "--purpose",
        "wanted",
        "--starts",
        "now",
        "--ends",
        "2h",
        "--officer",
        "Supt Khan",
        "-w",
        "wl-cli",
        "--json",
    )
    assert res.exit_code == 0, res.output
    dep = json.loads(res.output)
    dep_id = dep["deployment_id"]
    assert (
        dep["status"] == "draft"
        and dep["authorising_officer"] == "Supt Khan"
        and dep["created_by"] == "pc.cli"
    )

    res = run(
        "deployment",
        "create",
        "--name",
        "x",
        "--location",
        "y",
        "--purpose",
        "z",
        "--starts",
        "now",
        "--ends",
        "2h",
        "--officer",
        "Supt Khan",
        "-w",
        "wl-cli",
        "--threshold",
        f"{looser:g}",
    )
    assert res.exit_code == 1 and "reason" in res.output

    res = run("deployment", "authorise", dep_id, "--officer", "Insp Brown")
    assert res.exit_code == 1 and "cannot authorise" in res.output
    res = run("deployment", "authorise", dep_id, "--officer", "Supt Khan")
    assert res.exit_code == 0 and "authorised" in res.output and "expected false alerts" in res.output
    res = run("deployment", "start", dep_id)
    assert res.exit_code == 0 and "LIVE" in res.output
    res = run("deployment", "start", dep_id)
    assert res.exit_code == 1 and "running" in res.output
    res = run("deployment", "list")
    assert res.exit_code == 0 and dep_id in res.output and "1 deployments" in res.output
    res = run("deployment", "stop", dep_id, "--purge", "--reason", "operation over")
    assert res.exit_code == 0 and "2 alert(s) deleted" in res.output and purged == [dep_id]
    res = run("deployment", "get", "dep-missing")
    assert res.exit_code == 1 and "no deployment" in res.output

    res = run("audit", "verify")
    assert res.exit_code == 0 and "intact" in res.output
    res = run("audit", "tail", "-n", "3", "--json")
    assert [e["action"] for e in json.loads(res.output)] == [
        "deployment.start",
        "deployment.stop",
        "deployment.purge",
    ]


def test_watchlist_commands_and_broken_audit(lfr, models_dir, face_data: Path, wl_settings) -> None:
    run, _ = lfr
    demo = face_data / "face_recognition_demo"
    res = run(
        "watchlist",
        "enrol",
        str(demo / "enroll/alex_lacamoire/alex-lacamoire.png"),
        "-w",
        "wl-cli",
        "-s",
        "pnc-5",
        "--name",
        "Someone",
        "--category",
        "missing",
        "--expires",
        "2030-01-01",
    )
    assert res.exit_code == 0, res.output
    res = run("watchlist", "enrol", str(demo / "multi_face/two_people.jpg"), "-w", "wl-cli", "-s", "pnc-6")
    assert res.exit_code == 1 and "[several_faces]" in res.output
    res = run("watchlist", "list", "-w", "wl-cli")
    assert res.exit_code == 0 and "pnc-5" in res.output and "1 subjects" in res.output
    res = run("watchlist", "get", "pnc-5", "-w", "wl-cli", "--json")
    assert json.loads(res.output)["expires_at_iso"].startswith("2030-01-01")
    res = run(
        "watchlist", "update", "pnc-5", "-w", "wl-cli", "--expires", "never", "--reason", "still missing"
    )
    assert res.exit_code == 0
    res = run("watchlist", "delete", "pnc-5", "-w", "wl-cli", "--reason", "found safe")
    assert res.exit_code == 0 and "1 image(s)" in res.output
    res = run("watchlist", "delete", "pnc-5", "-w", "wl-cli")
    assert res.exit_code == 1 and "no subject" in res.output
    res = run("watchlist", "sweep")
    assert res.exit_code == 0 and "swept 0" in res.output

    res = run("audit", "verify", "--json")
    assert res.exit_code == 0 and json.loads(res.output)["ok"] is True

    # The head says one more record exists than the log holds (a deleted last record): broken, and named.
    import redis

    r = redis.Redis.from_url(wl_settings.redis_url)
    head_key = f"{wl_settings.redis.key_prefix}audit:head"
    seq = int(r.hget(head_key, "seq"))
    r.hset(head_key, "seq", seq + 1)
    r.close()
    res = run("audit", "verify")
    assert res.exit_code == 1 and f"BROKEN at record {seq + 1}" in res.output


def test_csv_import_prints_a_summary_with_each_rejection(lfr, face_data: Path, tmp_path: Path) -> None:
    import cv2
    import numpy as np

    run, _ = lfr
    known = face_data / "face_recognition_demo" / "known_people"
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.jpg").write_bytes((known / "obama" / "obama.jpg").read_bytes())
    (photos / "b.jpg").write_bytes((known / "biden" / "biden.jpg").read_bytes())
    cv2.imwrite(str(photos / "wall.jpg"), np.full((200, 200, 3), 128, np.uint8))  # no face
    csv_file = tmp_path / "subjects.csv"
    csv_file.write_text(
        "subject_id,display_name,image_path,category,source,image_date,expires_at\n"
        "csv-1,Subject One,photos/a.jpg,wanted,warrant 17,2024-05-01,90d\n"
        "csv-2,Subject Two,photos/b.jpg,missing,family,,\n"
        "csv-3,Subject Three,photos/wall.jpg,,,,\n"
    )
    res = run("watchlist", "import", str(csv_file), "--watchlist", "wl-csv", "--reason", "test", "--progress")
    assert res.exit_code == 0, res.output
    assert "2 of 3 images accepted (2 subjects); 1 rejected" in res.output
    assert "rejected subjects.csv:4: [no_face]" in res.output  # the row, and why
    assert "enrolling:" in res.output and "3/3" in res.output  # the progress bar ran to the end
    listed = run("watchlist", "list", "--watchlist", "wl-csv", "--json")
    subjects = {s["subject_id"]: s for s in json.loads(listed.output)}
    assert set(subjects) == {"csv-1", "csv-2"}
    assert subjects["csv-1"]["category"] == "wanted" and subjects["csv-2"]["category"] == "missing"
    assert subjects["csv-1"]["expires_at"] > 0 and subjects["csv-2"]["expires_at"] == 0
