"""Stand-ins for model cards so the watchlist rules can be tested without built models."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest


@dataclass(frozen=True)
class FakeCalibration:
    dataset: str
    figures: dict[str, float]


@dataclass(frozen=True)
class FakeCard:
    """Mirrors lfr.vision.cards.ModelCard's metric helpers (L2 distance or cosine similarity)."""

    name: str = "fake-l2"
    metric: str = "L2"
    dim: int = 4
    threshold: float = 0.6
    threshold_floor: float = 0.6
    calibration: tuple[Any, ...] = field(default_factory=tuple)

    def to_score(self, raw: float) -> float:
        if self.metric == "L2":
            return float(np.clip(1.0 - raw / 2.0, 0.0, 1.0))
        return float(np.clip(raw, 0.0, 1.0))

    def is_looser(self, threshold: float, than: float) -> bool:
        return threshold > than if self.metric == "L2" else threshold < than


COSINE = FakeCard(name="fake-cos", metric="COSINE", dim=4, threshold=0.4, threshold_floor=0.35)


L2 = FakeCard()


@pytest.fixture
def l2_card() -> FakeCard:
    return L2


@pytest.fixture
def cos_card() -> FakeCard:
    return COSINE
