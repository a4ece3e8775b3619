"""Track fusion: one template from several crops of the same person passing a camera.

Why fuse: a person walking past a camera yields several crops. Searching each crop on its own and alerting
when any one clears the threshold makes the false-alert rate per person grow with the number of crops (each
crop is another draw from the impostor distribution). The quality-weighted mean of a track's embeddings
averages out what differs from crop to crop (pose, blur, lighting) and keeps what is the same (the
identity): impostor scores of the fused template concentrate, genuine scores rise. ``lfr eval tracks``
measures the effect per track on the development set (docs/accuracy.md).

Fusing two people would be worse than not fusing: the tracker can follow another person (an identity switch
in a crowd, a cut in edited footage), and an alert would then show one person's crop with a score earned
partly by another's face. So a crop that does not look like its track's fused template so far (cosine
similarity below ``min_similarity``, on a COSINE model) starts the track's fusion afresh. On CFP, 0.3 lets
through 99.4 % of a person's own frontal photos (93.5 % with profiles) and stops 99.7 % of other people's
(docs/accuracy.md, "Steady tracks").

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


def continues(template: np.ndarray, vector: np.ndarray, min_similarity: float | None, metric: str) -> bool:
    """Whether ``vector`` looks like the person of the fused ``template`` (always, without a bound or on a
    non-COSINE model, whose distance scale the bound is not written in)."""
    if min_similarity is None or metric != "COSINE":
        return True
    t, v = normalise(template), normalise(vector)
    return float(np.dot(t.ravel(), v.ravel())) >= min_similarity


def running_fusions(
    vectors: np.ndarray,
    weights: np.ndarray | None = None,
    metric: str = "COSINE",
    min_similarity: float | None = None,
) -> np.ndarray:
    """The fused template after each crop in order: row ``i`` fuses crops ``s..i``, where ``s`` is the last
    crop that did not continue the template before it (what the live path searches as each crop of a track
    arrives; ``s`` = 0 without ``min_similarity``)."""
    v = np.asarray(vectors, dtype=np.float32).reshape(len(vectors), -1)
    w = np.ones(len(v), np.float32) if weights is None else np.asarray(weights, np.float32)
    rows: list[np.ndarray] = []
    start = 0
    for i in range(len(v)):
        if rows and not continues(rows[-1], v[i], min_similarity, metric):
            start = i
        rows.append(fuse(v[start : i + 1], w[start : i + 1], metric))
    return np.stack(rows)
