"""`lfr eval calibrate` on the committed test faces: the card figures and the quality-gate split.

Runs in every clone (the `face_data` tree, not the shared sets): five people of the face_recognition
examples, plus a blurred copy of one photo, which the quality gate refuses, so both verdicts are present.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import typer
from typer.testing import CliRunner

from lfr.evaluation.cli import eval_app

THRESHOLDS = "0.2,0.3,0.46"


def _root(face_data: Path, tmp_path: Path) -> Path:
    root = tmp_path / "people"
    shutil.copytree(face_data / "face_recognition_demo" / "knn_examples" / "train", root)
    photo = cv2.imread(str(root / "obama" / "obama.jpg"))
    assert photo is not None
    cv2.imwrite(str(root / "obama" / "obama-blurred.jpg"), cv2.GaussianBlur(photo, (0, 0), 20))
    return root


def test_calibrate_reports_card_figures_and_the_gate_split(
    cli_env: CliRunner, face_data: Path, tmp_path: Path
) -> None:
    app = typer.Typer()
    app.add_typer(eval_app, name="eval")
    root = _root(face_data, tmp_path)
    res = cli_env.invoke(app, ["eval", "calibrate", "--root", str(root), "--thresholds", THRESHOLDS])
    assert res.exit_code == 0, res.output + str(res.exception)
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["kind"] == "calibrate" and out["figures"]["images"] == 10.0
    passed, failed = out["by_gate"]["passed"], out["by_gate"]["failed"]
    assert failed["probes"] >= 1, "the blurred photo must fail the quality gate"
    assert passed["probes"] + failed["probes"] == 10
    # Against the photos that passed: every failed probe meets the other people's passed photos, and the
    # blurred photo meets its own sharp original.
    n_pass = passed["probes"]
    assert failed["impostor_comparisons"] >= n_pass - 2 and failed["genuine_comparisons"] >= 1
    # Ordered comparisons among the passed photos: each impostor pair of them counts both ways.
    assert passed["impostor_comparisons"] % 2 == 0 and passed["genuine_comparisons"] % 2 == 0
    for row in (passed, failed):
        assert set(row["fmr"]) == set(row["genuine_match_rate"]) == {"0.2", "0.3", "0.46"}
        rates = [row["genuine_match_rate"][k] for k in ("0.2", "0.3", "0.46")]
        assert all(0.0 <= r <= 1.0 for r in rates) and rates == sorted(rates, reverse=True)
    # The sharp photos of one person match each other at the card threshold.
    assert passed["genuine_match_rate"]["0.46"] > 0.5

    # Passages (here tracks of 2, 3 draws): every track meets every photo of the other people once.
    args = ["eval", "calibrate", "--root", str(root), "--thresholds", THRESHOLDS]
    res = cli_env.invoke(app, [*args, "--person-searches", "2", "--draws", "3"])
    assert res.exit_code == 0, res.output + str(res.exception)
    out = json.loads(res.stdout.strip().splitlines()[-1])
    # Only photos that pass the quality gate make passages and stand as watchlist photos: the blurred copy
    # is in neither.
    n_pass = out["by_gate"]["passed"]["probes"]
    tracks, others = out["person_tracks"], int(out["figures"]["person_impostor_comparisons"])
    assert out["person_draws"] == 3 and out["figures"]["person_searches"] == 2.0
    assert 3 * -(-n_pass // 2) <= tracks <= 3 * n_pass
    assert 0 < others < tracks * n_pass
    matches = [out["person_impostor_matches"][k] for k in ("0.2", "0.3", "0.46")]
    assert matches == sorted(matches, reverse=True) and all(0 <= c <= others for c in matches)
    # TPIR of a person seen in two views, from the live rule on the seeded split: falls as it gets stricter.
    seen = [out["figures"][f"tpir_person@{k}"] for k in ("0.2", "0.3", "0.46")]
    assert seen == sorted(seen, reverse=True) and all(0.0 <= x <= 1.0 for x in seen)


def test_calibrate_refuses_a_set_where_no_image_yields_a_face(cli_env: CliRunner, tmp_path: Path) -> None:
    app = typer.Typer()
    app.add_typer(eval_app, name="eval")
    person = tmp_path / "set" / "someone"
    person.mkdir(parents=True)
    (person / "photo.jpg").write_bytes(b"not a jpeg")
    res = cli_env.invoke(app, ["eval", "calibrate", "--root", str(person.parent), "--thresholds", THRESHOLDS])
    assert res.exit_code == 2, res.output
    assert "no face was found in any image" in res.output
