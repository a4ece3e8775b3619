"""Vision: model cards, detector and embedder plug-ins, alignment, quality and the default model build.

Public entry points:

* :func:`build_models` converts the default models (dlib ResNet v1 embedder, MTCNN detector) from their
  registry packages into ``<models_dir>/<name>/`` with a card each;
* :func:`load_detector` / :func:`load_embedder` construct the plug-ins the settings name;
* :class:`FaceAnalyzer` runs detection, quality, alignment and embedding, and enrols single faces.
"""

from lfr.vision.build import build_models
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
    "build_models",
    "find_card",
    "list_cards",
    "load_card",
    "load_detector",
    "load_embedder",
]
