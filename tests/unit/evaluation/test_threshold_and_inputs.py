"""Threshold recommendation maths, pair-list parsing and the tight-crop policy (no models needed)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from lfr.evaluation import threshold as th
from lfr.evaluation.datasets import DatasetError, read_groups, read_pairs
from lfr.evaluation.embedding import EvalEmbedder, looks_tight
from lfr.evaluation.identify import impostor_summary


def test_per_comparison_rate_inverts_the_compounding() -> None:
    """FPIR = 1 - (1 - FMR)^N, so FMR* for FPIR 1 - 0.99^100 at N = 100 is exactly 0.01; ~= f/N when small."""
    assert th.per_comparison_rate(1 - 0.99**100, 100) == pytest.approx(0.01)
    assert th.per_comparison_rate(1 / 6000, 10_000) == pytest.approx(1 / 6000 / 10_000, rel=1e-4)
    assert th.parse_rate("1/6000") == pytest.approx(1 / 6000)
    with pytest.raises(th.RecommendError):
        th.parse_rate("6000")


def _result(impostors: np.ndarray, genuine: list[float], floor: float = 0.9) -> dict:
    return {
        "kind": "verify",
        "metric": "L2",
        "threshold": 0.6,
        "threshold_floor": floor,
        "scores": {"lower_is_better": True, "genuine": genuine, **impostor_summary(impostors, True)},
    }


def test_empirical_recommendation_by_hand() -> None:
    """1,000 impostor distances 0.500, 0.501, ...; target FPIR 0.01 at N = 1 -> FMR* 0.01 -> 10 may match:
    the cut lies between the 10th (0.509) and 11th (0.510) closest: 0.5095. Genuine 0.3 and 0.505 pass."""
    imp = 0.5 + np.arange(1000) / 1000.0
    r = th.recommend(_result(imp, [0.3, 0.505, 0.7, 0.8]), 0.01, 1)
    assert r["method"] == "empirical"
    assert r["threshold"] == pytest.approx(0.5095)
    assert r["per_comparison_fmr_at_threshold"] == pytest.approx(0.01)
    assert r["expected_false_alerts_per_10000_people"] == pytest.approx(100.0)
    assert r["expected_false_alerts_per_10000_searches"] == pytest.approx(100.0)
    assert r["expected_tpir"] == pytest.approx(0.5)
    assert not r["clamped_to_floor"]


def test_watchlist_size_tightens_the_threshold() -> None:
    """The same target with N = 10 needs FMR* ~ 0.001: only 1 of the 1,000 may match -> 0.5005."""
    imp = 0.5 + np.arange(1000) / 1000.0
    r = th.recommend(_result(imp, [0.3]), 1 - (1 - 0.001) ** 10, 10)
    assert r["threshold"] == pytest.approx(0.5005)
    assert r["expected_false_alerts_per_10000_people"] == pytest.approx(10_000 * (1 - 0.999**10), rel=1e-6)


def test_unresolvable_target_extrapolates_and_says_so() -> None:
    rng = np.random.default_rng(0)
    imp = rng.normal(0.9, 0.1, size=500)
    r = th.recommend(_result(imp, [0.3]), 1 / 6000, 10_000)
    assert r["method"] == "gaussian"
    assert r["threshold"] < imp.min()  # never looser than an impostor actually seen
    assert any("extrapolated" in n for n in r["notes"])
    assert r["false_alerts_per_10000_people_upper_95"] > r["expected_false_alerts_per_10000_people"]


def test_a_person_searched_three_times_needs_a_third_of_the_rate_per_search() -> None:
    """Target 0.03 per person at N = 1, each person searched 3 times: 0.01 per search, so 10 of the 1,000
    impostor distances may match, the cut of the one-search case at 0.01 (0.5095); per person the union
    bound is 3 x 100 = 300 per 10,000. One search per person gives the one-search answer (30 may match)."""
    imp = 0.5 + np.arange(1000) / 1000.0
    r = th.recommend(_result(imp, [0.3]), 0.03, 1, searches_per_person=3)
    assert r["threshold"] == pytest.approx(0.5095)
    assert r["per_search_fpir_target"] == pytest.approx(0.01)
    assert r["expected_false_alerts_per_10000_searches"] == pytest.approx(100.0)
    assert r["expected_false_alerts_per_10000_people"] == pytest.approx(300.0)
    assert r["expected_fpir"] == pytest.approx(0.03) and "3 x" in r["person_basis"]
    once = th.recommend(_result(imp, [0.3]), 0.03, 1)
    assert once["threshold"] == pytest.approx(0.5295) and once["searches_per_person"] == 1
    with pytest.raises(th.RecommendError):
        th.recommend(_result(imp, [0.3]), 0.03, 1, searches_per_person=0)


def test_recommend_command_states_the_rate_per_person_and_per_search(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The command reads k from the settings (ingest.best_shot_max_per_track) unless told, and says both
    rates; ``--searches-per-person 1`` gives the per-search answer."""
    import json

    import typer
    from typer.testing import CliRunner

    from lfr.core.config import get_settings
    from lfr.evaluation.cli import threshold_app

    imp = 0.5 + np.arange(1000) / 1000.0
    p = tmp_path / "result.json"
    p.write_text(json.dumps(_result(imp, [0.3])))
    app = typer.Typer()
    app.add_typer(threshold_app, name="threshold")
    monkeypatch.setenv("LFR_INGEST__BEST_SHOT_MAX_PER_TRACK", "2")
    monkeypatch.setenv("LFR_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("LFR_CONFIG", raising=False)
    get_settings.cache_clear()
    try:
        args = ["threshold", "recommend", "--eval", str(p), "--target-fpir", "0.02", "--watchlist-size", "1"]
        text = CliRunner().invoke(app, args)
        assert text.exit_code == 0, text.output
        assert "threshold 0.5095" in text.output  # 0.01 per search: 10 of 1,000 may match
        assert "per 10,000 people passing: 200 " in text.output and "2 x the rate per search" in text.output
        assert "per 10,000 searches: 100 " in text.output
        once = CliRunner().invoke(app, [*args, "--searches-per-person", "1", "--json"])
        assert json.loads(once.output)["threshold"] == pytest.approx(0.5195)
    finally:
        get_settings.cache_clear()


def test_looser_than_floor_is_clamped() -> None:
    imp = 0.5 + np.arange(1000) / 1000.0
    r = th.recommend(_result(imp, [0.3], floor=0.45), 0.5, 1)
    assert r["clamped_to_floor"] and r["threshold"] == 0.45


def test_recommend_needs_saved_scores(tmp_path: Path) -> None:
    p = tmp_path / "r.json"
    p.write_text('{"accuracy": 0.9}')
    with pytest.raises(th.RecommendError, match="--out"):
        th.load_result(p)


def test_pairs_with_other_column_names(tmp_path: Path) -> None:
    p = tmp_path / "pairs.csv"
    p.write_text("file_x,file_y,decision\na.jpg,b.jpg,Yes\nc.jpg,d.jpg,no\n")
    pairs = read_pairs(p)
    assert [(x.a, x.b, x.same, x.row) for x in pairs] == [
        ("a.jpg", "b.jpg", True, 1),
        ("c.jpg", "d.jpg", False, 2),
    ]
    p.write_text("left,right\na,b\n")
    with pytest.raises(DatasetError, match="header"):
        read_pairs(p)
    p.write_text("img_a,img_b,same\na,b,maybe\n")
    with pytest.raises(DatasetError, match="row 1"):
        read_pairs(p)


def test_groups_file(tmp_path: Path) -> None:
    p = tmp_path / "g.csv"
    p.write_text("identity,group\nid01,g1\nid02,\n")
    assert read_groups(p) == {"id01": "g1", "id02": "unknown"}


@dataclass
class _Q:
    passed: bool = True
    reasons: list[str] = field(default_factory=list)
    score: float = 1.0


@dataclass
class _F:
    embedding: np.ndarray
    fell_back: bool = False
    quality: _Q = field(default_factory=_Q)


class _Analyzer:
    """Finds a face only on a padded canvas for tight images; records how it was called."""

    def __init__(self, plain: int, padded: int, fall_back: bool) -> None:
        self.plain, self.padded, self.fall_back = plain, padded, fall_back
        self.calls: list[bool] = []

    def analyse(self, image: np.ndarray, pad_tight: bool = False) -> list[_F]:
        self.calls.append(pad_tight)
        if not pad_tight:
            return [_F(np.ones(4)) for _ in range(self.plain)]
        if self.padded:
            return [_F(np.ones(4))]
        return [_F(np.zeros(4), fell_back=True)] if self.fall_back else []


def test_tight_crops_pad_first_and_fall_back(tmp_path: Path) -> None:
    tight = np.zeros((350, 350, 3), np.uint8)
    a = _Analyzer(plain=0, padded=0, fall_back=True)
    out = EvalEmbedder(a).embed_image(tight)  # type: ignore[arg-type]
    assert out.status == "fell_back" and out.vector is not None and a.calls == [True]


def test_full_photo_without_face_is_a_failure_not_a_fallback() -> None:
    photo = np.zeros((900, 1600, 3), np.uint8)
    assert not looks_tight(photo)
    a = _Analyzer(plain=0, padded=0, fall_back=True)
    out = EvalEmbedder(a).embed_image(photo)  # type: ignore[arg-type]
    assert out.status == "no_face" and out.failed and a.calls == [False, True]


def test_missing_and_unreadable_files_are_counted(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    e = EvalEmbedder(_Analyzer(1, 1, False))  # type: ignore[arg-type]
    e.embed_all([bad, tmp_path / "gone.jpg", bad])
    s = e.summary()
    assert (s["images"], s["failed_to_enrol"], s["unreadable"], s["missing"]) == (2, 2, 1, 1)
    assert s["embedded"] == 0
