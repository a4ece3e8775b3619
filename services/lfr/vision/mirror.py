"""A face's embedding combined with its mirror image's: for every chip (``models.embed_flip``) or only for
enrolment templates (``models.mirror_templates``).

Why templates only, by default: a watchlist photo is embedded once, at enrolment, while every live face is
embedded as it passes, so mirroring the templates buys its accuracy without adding to the live path's model
time. A face is nearly symmetric but a photo is not (light from one side, a slight turn, a parting):
averaging the two views moves the template towards what the person looks like from either side. Measured on
the open-set development set (docs/accuracy.md, "Mirrored enrolment templates"): fewer enrolled people
missed at fixed FPIR at nearly every operating point, seed and protocol.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # the embedder plug-ins import this module
    from lfr.vision.embedders.base import Embedder


def mirrored(chip: np.ndarray) -> np.ndarray:
    """The chip flipped left to right (contiguous, as the model input expects)."""
    return np.ascontiguousarray(chip[:, ::-1])


def combine_mirrored(plain: np.ndarray, mirror: np.ndarray, metric: str | None) -> np.ndarray:
    """One vector per row from a chip's embedding and its mirror's: unit vectors summed and halved for
    COSINE (the search normalises), the plain mean for L2 (its distances are in the model's own units)."""
    a, b = np.asarray(plain, dtype=np.float32), np.asarray(mirror, dtype=np.float32)
    if metric == "COSINE":
        a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
        b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return np.asarray((a + b) / 2.0, dtype=np.float32)


def template_embeddings(embedder: Embedder, chips: Sequence[np.ndarray]) -> np.ndarray:
    """Each chip embedded with its mirror image and the two combined: what an enrolment template holds."""
    if len(chips) == 0:
        return embedder.embed(chips)
    both = embedder.embed([*chips, *(mirrored(c) for c in chips)])
    return combine_mirrored(both[: len(chips)], both[len(chips) :], embedder.card.metric)
