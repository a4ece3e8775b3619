"""`lfr eval tracks` on the committed test faces: per-track rules, repeated draws and figures at thresholds.

Runs in every clone (the `face_data` tree): five people of the face_recognition examples, each photo also
mirrored and shrunk, so each person has several views to cut into tracks.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import pytest
import typer
from typer.testing import CliRunner

from lfr.core.config import get_settings
from lfr.evaluation.cli import eval_app


def _root(face_data: Path, tmp_path: Path) -> Path:
    root = tmp_path / "people"
    shutil.copytree(face_data / "face_recognition_demo" / "knn_examples" / "train", root)
    for photo in sorted(root.glob("*/*.jpg")):
        img = cv2.imread(str(photo))
        assert img is not None
        cv2.imwrite(str(photo.with_name(photo.stem + "-mirrored.jpg")), cv2.flip(img, 1))
        small = cv2.resize(img, None, fx=0.7, fy=0.7, interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(photo.with_name(photo.stem + "-small.jpg")), small)
    return root


def _tracks(runner: CliRunner, root: Path, *extra: str) -> dict:  # type: ignore[type-arg]
    app = typer.Typer()
    app.add_typer(eval_app, name="eval")
    res = runner.invoke(app, ["eval", "tracks", "--root", str(root), "--track-len", "2", "--json", *extra])
    assert res.exit_code == 0, res.output + str(res.exception)
    return json.loads(res.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_tracks_draws_repeat_the_cut_and_thresholds_add_rates_per_rule(
    cli_env: CliRunner, face_data: Path, tmp_path: Path
) -> None:
    root = _root(face_data, tmp_path)
    one = _tracks(cli_env, root)
    three = _tracks(cli_env, root, "--draws", "3", "--thresholds", "0.3,0.46,0.9")
    assert one["draws"] == 1 and three["draws"] == 3
    assert one["mated_tracks"] > 0 and one["nonmated_tracks"] > 0
    # Every draw cuts the same probes into tracks: three times the tracks, the same crops per track.
    assert three["mated_tracks"] == 3 * one["mated_tracks"]
    assert three["nonmated_tracks"] == 3 * one["nonmated_tracks"]
    assert three["median_crops_per_track"] == one["median_crops_per_track"] == 2.0
    assert set(three["rules"]) == {"crop", "any_crop", "fused", "fused_final"}
    for rule, r in three["rules"].items():
        assert set(r["at_thresholds"]) == {"0.3", "0.46", "0.9"}
        rows = [r["at_thresholds"][k] for k in ("0.3", "0.46", "0.9")]
        # A stricter threshold never finds more people nor alerts on more strangers.
        assert [x["tpir"] for x in rows] == sorted((x["tpir"] for x in rows), reverse=True), rule
        assert [x["fpir"] for x in rows] == sorted((x["fpir"] for x in rows), reverse=True), rule
        assert r["at_thresholds"]["0.46"]["fpir"] == r["fpir_at_threshold"]  # the card threshold
        assert r["at_thresholds"]["0.46"]["tpir"] == r["tpir_at_threshold"]
        assert one["rules"][rule]["at_thresholds"] == {}
    # The people's own mirrored and shrunk photos are found: fused tracks at the card threshold.
    assert three["rules"]["fused"]["tpir_at_threshold"] > 0.5
    # The per-crop rule counts crops, and draws search the same crops again.
    assert three["rules"]["crop"]["mated"] == 3 * one["rules"]["crop"]["mated"]


def test_tracks_refuses_bad_thresholds(cli_env: CliRunner, face_data: Path, tmp_path: Path) -> None:
    app = typer.Typer()
    app.add_typer(eval_app, name="eval")
    root = face_data / "face_recognition_demo" / "knn_examples" / "train"
    res = cli_env.invoke(app, ["eval", "tracks", "--root", str(root), "--thresholds", "0.4,high"])
    assert res.exit_code == 2, res.output
    assert "--thresholds must be a comma list of numbers" in res.output


def test_tracks_switches_show_what_the_fusion_bound_prevents(
    cli_env: CliRunner, face_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A track that follows A, then B: with the bound B's face is searched alone and does not match A."""
    root = _root(face_data, tmp_path)
    rates = {}
    for bound in ("0.3", "-1"):
        monkeypatch.setenv("LFR_EMBEDDER__TRACK_FUSION_MIN_SIMILARITY", bound)
        get_settings.cache_clear()
        out = _tracks(cli_env, root, "--switches", "5", "--thresholds", "0.3")
        assert out["fusion_min_similarity"] == float(bound)
        sw = out["identity_switches"]
        assert sw["tracks"] > 0 and sw["tracks"] % 5 == 0  # per round: one per enrolled person
        rates[bound] = sw["rate_matching_first_person"]["0.3"]
    assert rates["0.3"] < rates["-1"], rates
    assert rates["-1"] > 0.5  # two views of A outweigh one of B in the fused template
    no_switches = _tracks(cli_env, root)
    assert no_switches["identity_switches"] == {"tracks": 0, "rate_matching_first_person": {"0.46": None}}
