"""Fixtures for the redaction tests: settings with the built models, the checker, real face photos."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from lfr.core.config import Settings, load_settings
from lfr.vision import FaceAnalyzer

from .checks import Checker

# The redaction detectors under test, pinned rather than read from the environment's defaults: MTCNN on
# every scheduled frame (REDACT, the thorough mode), YuNet on every scheduled frame with MTCNN once a second
# beside it (SEEDED, the default), and the same with YuNet's frame shrunk to 0.75 (SEEDED_SHRUNK: faces of
# redact.min_face_px, 20, seen at 15), the fastest clean variant. The figures in docs/redaction.md are for
# these; tests/unit/redact (test_default_redaction_is_the_seeded_mode) keeps SEEDED the default.
REDACT: dict[str, object] = {"detector": "mtcnn", "seed_detector": None}
SEEDED: dict[str, object] = {
    "detector": "yunet",
    "seed_detector": "mtcnn",
    "seed_interval_s": 1.0,
    "seed_thresholds": (0.6, 0.7, 0.7),
    "yunet_reliable_face_px": 20,
}
SEEDED_SHRUNK: dict[str, object] = {**SEEDED, "yunet_reliable_face_px": 15}
SEEDED_MODES = {"yunet+mtcnn-seed": SEEDED, "yunet0.75+mtcnn-seed": SEEDED_SHRUNK}
MODES = {"mtcnn": REDACT, **SEEDED_MODES}
DEFAULT_MODE = "yunet+mtcnn-seed"


def mode_params(modes: dict[str, dict[str, object]]) -> list[object]:
    """The modes as test parameters: the default in `make test`, the others with the long tests (real
    footage through every detector variant takes about 25 s each)."""
    return [pytest.param(m, marks=() if m == DEFAULT_MODE else pytest.mark.long) for m in modes]


def with_redact(settings: Settings, mode: dict[str, object]) -> Settings:
    return settings.model_copy(update={"redact": settings.redact.model_copy(update=mode)})


def read(path: Path) -> np.ndarray:
    img = cv2.imread(str(path))
    assert img is not None, f"cannot read {path}"
    return img


@pytest.fixture(scope="session")
def redact_settings(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings for the parts that need no stack (engine, checker, analyzer).

    Redaction runs with the REDACT detectors here; tests of the seeded mode use ``with_redact``.
    """
    return load_settings(
        data_dir=tmp_path_factory.mktemp("redact-data"), models={"dir": models_dir}, redact=REDACT
    )


@pytest.fixture(scope="session")
def checker(redact_settings: Settings) -> Checker:
    return Checker.for_settings(redact_settings)


@pytest.fixture(scope="session")
def analyzer(redact_settings: Settings) -> FaceAnalyzer:
    return FaceAnalyzer(redact_settings)
