"""Fixtures for the watchlist integration tests: per-test settings with their own Milvus collection prefix
and Redis key prefix (so tests never see each other's subjects or deployments), and a minimal card for
tests that use synthetic vectors instead of the built models."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from lfr.core.config import Settings


@dataclass(frozen=True)
class VectorCard:
    name: str = "synthetic-l2"
    metric: str = "L2"
    dim: int = 8
    threshold: float = 0.6
    threshold_floor: float = 0.6

    def to_score(self, raw: float) -> float:
        if self.metric == "L2":
            return float(np.clip(1.0 - raw / 2.0, 0.0, 1.0))
        return float(np.clip(raw, 0.0, 1.0))

    def is_looser(self, threshold: float, than: float) -> bool:
        return threshold > than if self.metric == "L2" else threshold < than


@pytest.fixture
def wl_settings(settings_for) -> Settings:
    settings: Settings = settings_for(milvus={"collection_prefix": f"t{uuid.uuid4().hex[:8]}_"})
    return settings


@pytest.fixture
def demo_faces(face_data: Path) -> Path:
    return face_data / "face_recognition_demo"
