"""Opt-in int8 embedder: reproducible build, its own card, accuracy held to the float model's floors."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from lfr.core.config import Settings, load_settings
from lfr.evaluation.datasets import read_pairs
from lfr.modelbuild.evaluate import verify_pairs
from lfr.modelbuild.quantize import QuantizeError, quantize_embedder
from lfr.vision import FaceAnalyzer
from lfr.vision.cards import find_card, sha256_file

# Opt-in int8 tooling (quantizes the dlib embedder, about 25 s in all): run by make test-long and CI.
pytestmark = [pytest.mark.shared_data, pytest.mark.long]

BASE = "dlib-resnet-v1"
INT8 = "dlib-resnet-v1-int8"


def _calibration(faces_dir: Path) -> list[Path]:
    # The same photos the mtcnn5 chip template was calibrated on: none of them is in an evaluation set.
    return [faces_dir / "face_recognition_demo", faces_dir / "facenet_pytorch_samples" / "test_images"]


def _settings(models_dir: Path, tmp: Path, name: str) -> Settings:
    """A private copy of the built float models, so the session's models folder keeps exactly two cards."""
    d = tmp / name
    shutil.copytree(models_dir, d)
    return load_settings(models={"dir": str(d), "embedder": "dlib-resnet-v1", "detector": "mtcnn"})


@pytest.fixture(scope="module")
def quantized(
    models_dir: Path, faces_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Settings, Settings]:
    tmp = tmp_path_factory.mktemp("int8")
    first = _settings(models_dir, tmp, "a")
    second = _settings(models_dir, tmp, "b")
    for s in (first, second):
        quantize_embedder(s, BASE, INT8, _calibration(faces_dir))
    return first, second


def test_quantisation_is_reproducible(quantized: tuple[Settings, Settings]) -> None:
    a, b = (sha256_file(s.models_dir / INT8 / "model.onnx") for s in quantized)
    assert a == b


def test_card_is_a_model_of_its_own(quantized: tuple[Settings, Settings]) -> None:
    settings = quantized[0]
    base, card = find_card(settings.models_dir, BASE), find_card(settings.models_dir, INT8)
    card.verify_files()
    assert card.model_id != base.model_id and card.files[0].sha256 != base.files[0].sha256
    assert (card.metric, card.threshold, card.threshold_floor, card.dim) == (
        base.metric,
        base.threshold,
        base.threshold_floor,
        base.dim,
    )
    assert card.templates == base.templates
    assert card.calibration == ()  # the float model's figures do not describe this one
    assert "face chips from" in card.source and base.model_id in card.source
    assert any("enrolled" in c for c in card.caveats)


def test_int8_embeddings_stay_close_and_accuracy_holds_the_floors(
    quantized: tuple[Settings, Settings], shared_faces: Path
) -> None:
    settings = quantized[0]
    float_an = FaceAnalyzer(settings)
    int8_an = FaceAnalyzer(
        settings.model_copy(update={"models": settings.models.model_copy(update={"embedder": INT8})})
    )
    base = float_an.embedder.card
    chips = [
        f.chip
        for img in sorted((shared_faces / "deepface_testset" / "images").rglob("*.jpg"))[:12]
        for f in float_an.analyse(_load(img))[:1]
    ]
    assert len(chips) >= 10
    diff = np.linalg.norm(float_an.embedder.embed(chips) - int8_an.embedder.embed(chips), axis=1)
    assert float(np.median(diff)) < 0.1, diff  # against a match threshold of 0.6

    root = shared_faces / "deepface_testset"
    r = verify_pairs(int8_an, root / "images", read_pairs(root / "pairs.csv"), max_side=1600)
    assert r.accuracy >= base.calibration_for("deepface").figures["accuracy_floor"], r.accuracy
    lfw = shared_faces / "lfw_pairs_dev"
    r = verify_pairs(int8_an, lfw / "images", read_pairs(lfw / "pairs.csv")[::5], pad_tight=True)
    assert r.accuracy >= base.calibration_for("lfw_dev_every5").figures["accuracy_floor"], r.accuracy


def _load(path: Path) -> np.ndarray:
    import cv2

    img = cv2.imread(str(path))
    assert img is not None, path
    side = max(img.shape[:2])
    if side > 1600:
        img = cv2.resize(img, None, fx=1600 / side, fy=1600 / side, interpolation=cv2.INTER_AREA)
    return img


def test_refusals_are_clear(models_dir: Path, faces_dir: Path, tmp_path: Path) -> None:
    settings = _settings(models_dir, tmp_path, "c")
    with pytest.raises(QuantizeError, match="name of its own"):
        quantize_embedder(settings, BASE, BASE, _calibration(faces_dir))
    with pytest.raises(QuantizeError, match="only onnx-embedder"):
        quantize_embedder(settings, "mtcnn", INT8, _calibration(faces_dir))
    with pytest.raises(QuantizeError, match="does not exist"):
        quantize_embedder(settings, BASE, INT8, [tmp_path / "nowhere"])
    one_photo = sorted((faces_dir / "face_recognition_demo").rglob("*.jpg"))[:1]
    with pytest.raises(QuantizeError, match="at least 16 are needed"):
        quantize_embedder(settings, BASE, INT8, one_photo)
    assert not (settings.models_dir / INT8).exists()
