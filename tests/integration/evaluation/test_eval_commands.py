"""`lfr eval verify|identify` and `lfr threshold recommend` on the shared real face sets.

Needs ../shared/data/faces (skipped with a one-line reason when absent) and the built default models. The
default suite runs seeded subsets (150 pairs per set, 150 distractors); the full sets run under ``slow``.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from lfr.evaluation.cli import eval_app, threshold_app

pytestmark = pytest.mark.shared_data

REQUIRED_VERIFY = {
    "accuracy",
    "threshold",
    "tar_at_far_1e-3",
    "tar_at_far_1e-4",
    "pairs",
    "failed_to_enrol",
    "fell_back",
    "best_threshold",
}


def _app() -> typer.Typer:
    app = typer.Typer()
    app.add_typer(eval_app, name="eval")
    app.add_typer(threshold_app, name="threshold")
    return app


def _run(runner: CliRunner, args: list[str]) -> dict:
    res = runner.invoke(_app(), args)
    assert res.exit_code == 0, res.output + str(res.exception)
    lines = [ln for ln in res.stdout.splitlines() if ln.strip()]
    assert len(lines) == 1, f"--json must print one JSON object, got {len(lines)} lines"
    return json.loads(lines[0])


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def test_verify_lfw_subset_writes_json_plots_and_report(
    cli_env: CliRunner, shared_faces: Path, tmp_path: Path
) -> None:
    lfw = shared_faces / "lfw_pairs_dev"
    out = tmp_path / "lfw"
    r = _run(
        cli_env,
        [
            "eval",
            "verify",
            "--pairs",
            str(lfw / "pairs.csv"),
            "--root",
            str(lfw / "images"),
            "--sample",
            "150",
            "--json",
            "--out",
            str(out),
        ],
    )
    assert REQUIRED_VERIFY <= set(r)
    assert r["pairs"] == 150 and r["genuine_pairs"] + r["impostor_pairs"] == 150
    assert r["failed_to_enrol"] == 0  # tight 350x350 grey crops work with default options
    assert r["accuracy"] > 0.9, r
    # 150 pairs hold far fewer than 1,000 impostor pairs: both rates must be reported as unresolved.
    assert r["tar_at_far_1e-3"] is None and r["tar_at_far_1e-4"] is None
    assert r["cv_accuracy"] is not None  # LFW pairs carry folds
    for name in ("roc.png", "det.png"):
        w, h = _png_size(out / name)
        assert w >= 300 and h >= 200
    report = (out / "report.md").read_text()
    assert "accuracy at card threshold" in report and "unresolved" in report
    assert "Abel_Pacheco" not in report, "reports name pairs by CSV row, never by person"
    saved = json.loads((out / "result.json").read_text())
    assert len(saved["scores"]["genuine"]) == r["genuine_pairs"]


def test_verify_deepface_subset(cli_env: CliRunner, shared_faces: Path, tmp_path: Path) -> None:
    ds = shared_faces / "deepface_testset"
    r = _run(
        cli_env,
        [
            "eval",
            "verify",
            "--pairs",
            str(ds / "pairs.csv"),
            "--root",
            str(ds / "images"),
            "--sample",
            "150",
            "--seed",
            "1",
            "--json",
        ],
    )
    assert REQUIRED_VERIFY <= set(r)
    assert r["pairs"] == 150 and r["failed_to_enrol"] == 0
    assert r["accuracy"] > 0.9, r
    assert r["cv_accuracy"] is None  # no fold column in this set


def test_identify_deepface_with_lfw_distractors_and_threshold(
    cli_env: CliRunner, shared_faces: Path, tmp_path: Path
) -> None:
    ds = shared_faces / "deepface_testset" / "images"
    groups = tmp_path / "groups.csv"
    ids = sorted(p.name for p in ds.iterdir() if p.is_dir())
    groups.write_text(
        "identity,group\n" + "".join(f"{i},{'g1' if n % 2 else 'g2'}\n" for n, i in enumerate(ids))
    )
    out = tmp_path / "identify"
    r = _run(
        cli_env,
        [
            "eval",
            "identify",
            "--root",
            str(ds),
            "--enrol-per-id",
            "1",
            "--distractors",
            str(shared_faces / "lfw_pairs_dev" / "images"),
            "--max-distractors",
            "150",
            "--groups",
            str(groups),
            "--seed",
            "3",
            "--json",
            "--out",
            str(out),
        ],
    )
    for key in (
        "tpir",
        "rank1",
        "threshold",
        "fnir_at_fpir",
        "mated_searches",
        "nonmated_searches",
        "failed_to_enrol",
        "groups",
        "largest_differential",
    ):
        assert key in r, key
    assert r["gallery_identities"] == len(ids)
    assert r["mated_searches"] == sum(len(list((ds / i).iterdir())) - 1 for i in ids)
    assert r["nonmated_searches"] == 150
    assert set(r["fnir_at_fpir"]) == {"0.02", "0.01", "0.003", "0.001", "1/6000"}
    resolved = {k for k, v in r["fnir_at_fpir"].items() if v is not None}
    assert resolved == {"0.02", "0.01"}, "150 non-mated searches resolve FPIR 0.02 and 0.01 only"
    assert r["rank1"] > 0.8 and r["tpir"] > 0.7, r
    assert {g["group"] for g in r["groups"]} >= {"g1", "g2"}
    for g in r["groups"]:  # per-group FNIR at each FPIR, unresolved with this few non-mated searches
        assert set(g["fnir_at_fpir"]) == {"0.02", "0.01", "0.003", "0.001", "1/6000"}
        assert all(v is None for v in g["fnir_at_fpir"].values())
    assert {d["rate"] for d in r["largest_differential"]} >= {"fnir", "fpir", "fnir at fpir 0.003"}
    # Bootstrap intervals over identities: the groups hold only mated searches (the distractors carry no
    # group), so FNIR is compared at the card threshold and at each FPIR the whole set resolves.
    iv = r["differential_intervals"]
    assert iv["resamples"] == 1000 and iv["seed"] == 3
    fnir = {c["rate"]: c for c in iv["comparisons"] if c["group_a"] == "g1" and c["group_b"] == "g2"}
    assert set(fnir) >= {"fnir", "fpir", "fnir at overall fpir 0.02", "fnir at overall fpir 0.01"}
    d = fnir["fnir"]["difference"]
    assert d["low"] <= d["estimate"] <= d["high"] and isinstance(fnir["fnir"]["significant"], bool)
    assert fnir["fpir"]["difference"]["estimate"] is None  # no non-mated searches in either group
    _png_size(out / "det.png")
    report = (out / "report.md").read_text()
    assert "Identification report" in report and "1000 bootstrap resamples over identities" in report

    rec = _run(
        cli_env,
        [
            "threshold",
            "recommend",
            "--eval",
            str(out / "result.json"),
            "--target-fpir",
            "1/6000",
            "--watchlist-size",
            "1000",
            "--json",
        ],
    )
    # Never looser than the card floor (L2: not above it; cosine: not below it).
    if r["metric"] == "L2":
        assert rec["threshold"] <= r["threshold_floor"]
    else:
        assert rec["threshold"] >= r["threshold_floor"]
    assert rec["method"] == "gaussian" and rec["notes"]
    assert rec["expected_false_alerts_per_10000_people"] >= 0 and rec["expected_tpir"] is not None
    # The target is per person: a live camera searches a steady person up to best_shot_max_per_track times.
    assert rec["searches_per_person"] == 3 and rec["per_search_fpir_target"] == pytest.approx(1 / 18000)


def test_identify_leaves_a_third_out_without_distractors(models_dir: Path, shared_faces: Path) -> None:
    from lfr.core.config import load_settings
    from lfr.evaluation.identify import run_identify

    s = load_settings(models={"dir": str(models_dir)})
    r = run_identify(s, shared_faces / "deepface_testset" / "images", seed=5)
    assert r["identities"] == 13 and r["left_out_identities"] == 4
    assert r["gallery_identities"] == 9 and r["nonmated_searches"] > 0


def test_verify_refuses_bad_pairs_file(cli_env: CliRunner, tmp_path: Path) -> None:
    bad = tmp_path / "pairs.csv"
    bad.write_text("x,y\n1,2\n")
    res = cli_env.invoke(_app(), ["eval", "verify", "--pairs", str(bad), "--root", str(tmp_path), "--json"])
    assert res.exit_code == 2 and "header" in res.output


@pytest.mark.slow
def test_verify_full_sets(models_dir: Path, shared_faces: Path, tmp_path: Path) -> None:
    from lfr.core.config import load_settings
    from lfr.evaluation.verify import run_verify

    s = load_settings(models={"dir": str(models_dir)})
    lfw = run_verify(
        s,
        shared_faces / "lfw_pairs_dev" / "pairs.csv",
        shared_faces / "lfw_pairs_dev" / "images",
        out_dir=tmp_path / "lfw",
    )
    assert lfw["pairs"] == 1115 and lfw["failed_to_enrol"] == 0 and lfw["accuracy"] > 0.97
    dft = run_verify(
        s,
        shared_faces / "deepface_testset" / "pairs.csv",
        shared_faces / "deepface_testset" / "images",
        out_dir=tmp_path / "deepface",
    )
    assert dft["pairs"] == 520 and dft["accuracy"] > 0.95


@pytest.mark.slow
def test_identify_full_distractors(models_dir: Path, shared_faces: Path, tmp_path: Path) -> None:
    from lfr.core.config import load_settings
    from lfr.evaluation.identify import run_identify

    s = load_settings(models={"dir": str(models_dir)})
    r = run_identify(
        s,
        shared_faces / "deepface_testset" / "images",
        distractors=shared_faces / "lfw_pairs_dev" / "images",
        out_dir=tmp_path,
    )
    assert r["nonmated_searches"] == 1493
    assert r["fnir_at_fpir"]["0.003"] is not None and r["fnir_at_fpir"]["0.001"] is not None
    assert r["fnir_at_fpir"]["1/6000"] is None  # 1,493 < 6,000 non-mated searches
