"""`lfr models adapt`: an SFace copy with the strongest within-subject directions projected out, built from
labelled CFP photos (20 people x 3): its own card, reproducible, and the projection is what it runs."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from lfr.core.config import Settings, load_settings
from lfr.core.images import read_image
from lfr.modelbuild.adapt import LabelledFaces, Projection, adapt_embedder
from lfr.modelbuild.cli import app
from lfr.vision import FaceAnalyzer
from lfr.vision.cards import ModelCard, find_card, sha256_file

# Opt-in model tooling (embeds 60 photos twice, about 20 s): run by make test-long and CI.
pytestmark = [pytest.mark.shared_data, pytest.mark.long]

NAME = "sface-nap"
Adapted = tuple[Settings, Settings, tuple[ModelCard, LabelledFaces, Projection], Path]


def _labelled(cfp: Path, dest: Path, people: int = 20, per: int = 3) -> Path:
    """People's first photos, one frontal pair and a profile each, so pose is what varies within a person."""
    for person in sorted(p for p in cfp.iterdir() if p.is_dir())[:people]:
        d = dest / person.name
        d.mkdir(parents=True)
        for name in ("frontal_01.jpg", "frontal_02.jpg", "profile_01.jpg")[:per]:
            shutil.copy(person / name, d / name)
    return dest


def _settings(models_dir: Path, tmp: Path, name: str) -> Settings:
    d = tmp / name
    shutil.copytree(models_dir, d)
    return load_settings(models={"dir": str(d)})


@pytest.fixture(scope="module")
def adapted(models_dir: Path, shared_faces: Path, tmp_path_factory: pytest.TempPathFactory) -> Adapted:
    tmp = tmp_path_factory.mktemp("adapt")
    root = _labelled(shared_faces / "cfp" / "images", tmp / "photos")
    first, second = _settings(models_dir, tmp, "a"), _settings(models_dir, tmp, "b")
    built = [adapt_embedder(s, "sface", NAME, root, 2) for s in (first, second)]
    return first, second, built[0], root


def test_adaptation_is_reproducible_and_a_model_of_its_own(adapted: Adapted) -> None:
    first, second, (card, faces, projection), _ = adapted
    a, b = (sha256_file(s.models_dir / NAME / "model.onnx") for s in (first, second))
    assert a == b
    base = find_card(first.models_dir, "sface")
    card.verify_files()
    assert card.model_id != base.model_id and card.output_name == "fc1_nap"
    assert (card.metric, card.threshold, card.threshold_floor, card.dim) == (
        base.metric,
        base.threshold,
        base.threshold_floor,
        base.dim,
    )
    assert card.calibration == () and base.calibration  # measured on the base model: not carried over
    assert any("enrolled with this card" in c for c in card.caveats)
    assert faces.subject_count == 20 and len(faces.subjects) >= 57
    assert projection.directions.shape == (128, 2) and 0 < projection.explained < 1


def test_the_adapted_model_runs_the_projection(adapted: Adapted) -> None:
    """Same chip through both cards: the adapted embedding is the base one with the two directions
    removed, and has nothing left along them."""
    settings, _, (_card, _faces, projection), root = adapted
    base = FaceAnalyzer(
        settings.model_copy(update={"models": settings.models.model_copy(update={"embedder": "sface"})})
    )
    nap = FaceAnalyzer(
        settings.model_copy(update={"models": settings.models.model_copy(update={"embedder": NAME})})
    )
    chips = []
    for photo in sorted(root.glob("*/frontal_01.jpg"))[:5]:
        image = read_image(photo)
        assert image is not None
        chips.append(base.analyse(image, pad_tight=True)[0].chip)
    b = base.embedder.embed(chips).astype(np.float64)
    n = nap.embedder.embed(chips).astype(np.float64)
    expected = b @ projection.matrix()
    np.testing.assert_allclose(n, expected, rtol=1e-4, atol=1e-4)
    u = projection.directions
    assert np.abs((n / np.linalg.norm(n, axis=1, keepdims=True)) @ u).max() < 1e-4
    assert np.abs((b / np.linalg.norm(b, axis=1, keepdims=True)) @ u).max() > 1e-3  # it did remove something


def test_the_command_refuses_too_few_subjects(
    models_dir: Path, shared_faces: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lfr.core.config import get_settings

    root = _labelled(shared_faces / "cfp" / "images", tmp_path / "photos", people=5)
    monkeypatch.setenv("LFR_MODELS__DIR", str(_settings(models_dir, tmp_path, "m").models_dir))
    monkeypatch.setenv("LFR_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    try:
        r = CliRunner().invoke(app, ["adapt", str(root)])
    finally:
        get_settings.cache_clear()
    assert r.exit_code == 1
    assert "5 subject folders" in r.output and "at least 20" in r.output
    assert not (tmp_path / "m" / NAME).exists()
