"""The embedder interface: align a face to the model's chip, then map chips to vectors.

Why alignment belongs to the embedder: the chip template (size, landmark positions, padding) is a property
of how the embedding network was trained, so it lives in the embedder's model card, keyed by the landmark
scheme of the detector that produced the landmarks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from lfr.vision.cards import ModelCard


class EmbedderError(ValueError):
    """The embedder cannot serve this request (unknown landmark scheme, bad chip, wrong output size)."""


@runtime_checkable
class Embedder(Protocol):
    card: ModelCard
    model_id: str
    chip_size: int

    def align(self, image_bgr: np.ndarray, landmarks: np.ndarray, scheme: str = "mtcnn5") -> np.ndarray: ...

    def embed(self, chips: Sequence[np.ndarray]) -> np.ndarray: ...
