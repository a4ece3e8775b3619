"""Vision runtime: model cards, detector and embedder plug-ins, alignment, quality and the face pipeline.

Public entry points:

* :func:`load_detector` / :func:`load_embedder` construct the plug-ins the settings name;
* :class:`FaceAnalyzer` runs detection, quality, alignment and embedding, and enrols single faces.

Building and converting the models is tooling, not runtime: it lives in :mod:`lfr.modelbuild`.

Names are resolved on first use, so importing one light module (a detector's settings, the cards) does not
load the ONNX pipeline, and :mod:`lfr.core.config` can compose the plug-ins' settings without a cycle.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lfr.vision.cards import CardError, ModelCard, ModelFileError, find_card, list_cards, load_card
    from lfr.vision.detectors import Detection, Detector, ImageTooLargeError
    from lfr.vision.embedders import Embedder
    from lfr.vision.pipeline import (
        AnalysedFace,
        EnrolmentError,
        FaceAnalyzer,
        MultipleFacesError,
        NoFaceError,
        PoorQualityError,
        load_detector,
        load_embedder,
    )
    from lfr.vision.quality import QualityReport

_EXPORTS = {
    "AnalysedFace": "lfr.vision.pipeline",
    "CardError": "lfr.vision.cards",
    "Detection": "lfr.vision.detectors",
    "Detector": "lfr.vision.detectors",
    "Embedder": "lfr.vision.embedders",
    "EnrolmentError": "lfr.vision.pipeline",
    "FaceAnalyzer": "lfr.vision.pipeline",
    "ImageTooLargeError": "lfr.vision.detectors",
    "ModelCard": "lfr.vision.cards",
    "ModelFileError": "lfr.vision.cards",
    "MultipleFacesError": "lfr.vision.pipeline",
    "NoFaceError": "lfr.vision.pipeline",
    "PoorQualityError": "lfr.vision.pipeline",
    "QualityReport": "lfr.vision.quality",
    "find_card": "lfr.vision.cards",
    "list_cards": "lfr.vision.cards",
    "load_card": "lfr.vision.cards",
    "load_detector": "lfr.vision.pipeline",
    "load_embedder": "lfr.vision.pipeline",
}

__all__ = [
    "AnalysedFace",
    "CardError",
    "Detection",
    "Detector",
    "Embedder",
    "EnrolmentError",
    "FaceAnalyzer",
    "ImageTooLargeError",
    "ModelCard",
    "ModelFileError",
    "MultipleFacesError",
    "NoFaceError",
    "PoorQualityError",
    "QualityReport",
    "find_card",
    "list_cards",
    "load_card",
    "load_detector",
    "load_embedder",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'lfr.vision' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
