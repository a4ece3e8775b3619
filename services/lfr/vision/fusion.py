"""Track fusion: one template from several crops of the same person passing a camera.

Why fuse: a person walking past a camera yields several crops. Searching each crop on its own and alerting
when any one clears the threshold makes the false-alert rate per person grow with the number of crops (each
crop is another draw from the impostor distribution). The quality-weighted mean of a track's embeddings
averages out what differs from crop to crop (pose, blur, lighting) and keeps what is the same (the
identity): impostor scores of the fused template concentrate, genuine scores rise. ``lfr eval tracks``
measures the effect per track on the development set (docs/accuracy.md).

For a COSINE model the unit-normalised vectors are averaged; for an L2 model the raw vectors (their
distance scale is what the threshold was calibrated on). Weights are the crops' best-shot quality scores
(lfr.vision.quality), floored at ``MIN_WEIGHT`` so a poor crop still counts a little.
"""

from __future__ import annotations

import numpy as np

MIN_WEIGHT = 0.05


def normalise(vectors: np.ndarray) -> np.ndarray:
    v = np.asarray(vectors, dtype=np.float32)
    return np.asarray(v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12), dtype=np.float32)


def fuse(vectors: np.ndarray, weights: np.ndarray | None = None, metric: str = "COSINE") -> np.ndarray:
    """The fused template of ``vectors`` (N, d) with per-crop ``weights`` (N,)."""
    v = np.asarray(vectors, dtype=np.float32).reshape(len(vectors), -1)
    if len(v) == 0:
        raise ValueError("nothing to fuse")
    w = (
        np.ones(len(v), np.float32)
        if weights is None
        else np.maximum(np.asarray(weights, np.float32), MIN_WEIGHT)
    )
    if metric == "COSINE":
        v = normalise(v)
    out = (w[:, None] * v).sum(axis=0) / w.sum()
    return normalise(out) if metric == "COSINE" else np.asarray(out, dtype=np.float32)


def running_fusions(
    vectors: np.ndarray, weights: np.ndarray | None = None, metric: str = "COSINE"
) -> np.ndarray:
    """The fused template after each crop in order: row ``i`` fuses crops ``0..i`` (what the live path
    searches as each crop of a track arrives)."""
    v = np.asarray(vectors, dtype=np.float32).reshape(len(vectors), -1)
    return np.stack(
        [fuse(v[: i + 1], None if weights is None else weights[: i + 1], metric) for i in range(len(v))]
    )
