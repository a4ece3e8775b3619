"""Fixtures for the redaction tests: settings with the built models, the checker, real face photos."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from lfr.core.config import Settings, load_settings
from lfr.vision import FaceAnalyzer

from .checks import Checker

REDACT_DETECTOR = "mtcnn"


def read(path: Path) -> np.ndarray:
    img = cv2.imread(str(path))
    assert img is not None, f"cannot read {path}"
    return img


@pytest.fixture(scope="session")
def redact_settings(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings for the parts that need no stack (engine, checker, analyzer).

    Redaction runs with MTCNN here (REDACT_DETECTOR): the figures in docs/redaction.md are for it. With the
    YuNet card the checker finds small faces YuNet misses (docs/redaction.md, Limits).
    """
    return load_settings(
        data_dir=tmp_path_factory.mktemp("redact-data"),
        models={"dir": models_dir, "detector": REDACT_DETECTOR},
    )


@pytest.fixture(scope="session")
def checker(redact_settings: Settings) -> Checker:
    return Checker.for_settings(redact_settings)


@pytest.fixture(scope="session")
def analyzer(redact_settings: Settings) -> FaceAnalyzer:
    return FaceAnalyzer(redact_settings)
