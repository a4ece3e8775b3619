"""Shared fixtures for the vision integration tests: built models (once per session) and the test faces.

``faces_dir`` is the test face tree every clone has (tests/fixtures/README.md), in the layout of the shared
data set; tests that measure on whole evaluation sets take ``shared_faces`` (tests/conftest.py) instead and
skip without it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lfr.core.config import Settings, load_settings
from lfr.modelbuild import build_models
from lfr.vision import FaceAnalyzer
from lfr.vision.cards import ModelCard

FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="session")
def faces_dir(face_data: Path) -> Path:
    return face_data


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("models")
    build_models(d)
    return d


@pytest.fixture(scope="session")
def cards(models_dir: Path) -> dict[str, ModelCard]:
    return {c.name: c for c in build_models(models_dir)}


# The MTCNN + dlib pair these tests were written for (chip sizes, L2 distances, the dlib parity and the
# MTCNN cascade figures). The default pair (YuNet + SFace) has its own tests: test_vision_zoo.py, the
# parametrised test_vision_verification.py, and every pipeline test outside this folder.
LEGACY_MODELS = {"embedder": "dlib-resnet-v1", "detector": "mtcnn"}


@pytest.fixture(scope="session")
def settings(models_dir: Path) -> Settings:
    return load_settings(models={"dir": str(models_dir), **LEGACY_MODELS})


@pytest.fixture(scope="session")
def analyzer(settings: Settings) -> FaceAnalyzer:
    return FaceAnalyzer(settings)


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


def _load_fixture(name: str) -> dict[str, Any]:
    return dict(json.loads((FIXTURES / name).read_text()))


@pytest.fixture(scope="session")
def photo_labels() -> dict[str, Any]:
    return _load_fixture("photo_faces.json")
