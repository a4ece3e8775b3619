"""The photo embedder as evaluation uses it: one embedding per image, failures and fallbacks counted.

Why a re-export: the embedding policy (tight crops, padding, the photo's most likely face) is the vision
runtime's, shared with custody galleries and enrolment-style photos; evaluation names it ``EvalEmbedder``
and must measure exactly what production runs, so it takes the runtime's module rather than a copy.
"""

from __future__ import annotations

from lfr.vision.photo_embedding import (
    FAILED,
    MAX_SIDE,
    TIGHT_ASPECT,
    TIGHT_MAX_SIDE,
    EmbedOutcome,
    PhotoEmbedder,
    Status,
    TightPolicy,
    looks_tight,
    read_image,
    tally,
)

EvalEmbedder = PhotoEmbedder

__all__ = [
    "FAILED",
    "MAX_SIDE",
    "TIGHT_ASPECT",
    "TIGHT_MAX_SIDE",
    "EmbedOutcome",
    "EvalEmbedder",
    "PhotoEmbedder",
    "Status",
    "TightPolicy",
    "looks_tight",
    "read_image",
    "tally",
]
