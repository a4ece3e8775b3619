"""Verification accuracy at the card's threshold, asserted against the floors recorded in the card."""

from __future__ import annotations

from pathlib import Path

import pytest

from lfr.core.config import load_settings
from lfr.evaluation.datasets import read_pairs
from lfr.modelbuild.evaluate import verify_pairs
from lfr.vision import FaceAnalyzer

pytestmark = pytest.mark.shared_data

# Each embedder card with the detector its calibration was measured with.
MODEL_PAIRS = [("sface", "yunet"), ("dlib-resnet-v1", "mtcnn")]


@pytest.fixture(scope="module", params=MODEL_PAIRS, ids=[e for e, _ in MODEL_PAIRS])
def analyzer(request: pytest.FixtureRequest, models_dir: Path) -> FaceAnalyzer:
    embedder, detector = request.param
    return FaceAnalyzer(
        load_settings(models={"dir": str(models_dir), "embedder": embedder, "detector": detector})
    )


def _check(analyzer: FaceAnalyzer, name: str, result_accuracy: float, pairs: int) -> None:
    cal = analyzer.embedder.card.calibration_for(name)
    assert pairs == int(cal.figures["pairs"])
    assert result_accuracy >= cal.figures["accuracy_floor"], (name, result_accuracy)
    # Within a few pairs of the figure the card publishes: the card must stay truthful.
    assert abs(result_accuracy - cal.figures["accuracy"]) <= 0.01, (name, result_accuracy)


def test_deepface_pairs(analyzer: FaceAnalyzer, shared_faces: Path) -> None:
    root = shared_faces / "deepface_testset"
    r = verify_pairs(analyzer, root / "images", read_pairs(root / "pairs.csv"), max_side=1600)
    assert r.skipped == 0
    card = analyzer.embedder.card
    assert card.threshold is not None
    # Genuine pairs sit on the match side of the threshold on average, impostor pairs on the other.
    assert card.is_match(r.genuine_mean) and not card.is_match(r.impostor_mean)
    _check(analyzer, "deepface", r.accuracy, r.pairs)


def test_lfw_pairs_subsample(analyzer: FaceAnalyzer, shared_faces: Path) -> None:
    root = shared_faces / "lfw_pairs_dev"
    pairs = read_pairs(root / "pairs.csv")[::5]
    r = verify_pairs(analyzer, root / "images", pairs, pad_tight=True)
    _check(analyzer, "lfw_dev_every5", r.accuracy, r.pairs)


@pytest.mark.slow
def test_lfw_pairs_full(analyzer: FaceAnalyzer, shared_faces: Path) -> None:
    root = shared_faces / "lfw_pairs_dev"
    r = verify_pairs(analyzer, root / "images", read_pairs(root / "pairs.csv"), pad_tight=True)
    _check(analyzer, "lfw_dev_full", r.accuracy, r.pairs)
    assert r.fell_back <= 30
