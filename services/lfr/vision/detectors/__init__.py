"""Detector plug-ins, registered by model-card ``type`` (one module per backend, like Frigate's detectors).

A backend module calls :func:`register_detector` at import time; :func:`create_detector` picks the factory
named by the card. Adding a backend means adding a module here and importing it below, nothing else.
"""

from __future__ import annotations

from collections.abc import Callable

from lfr.core.config import Settings
from lfr.vision.cards import ModelCard
from lfr.vision.detectors.base import (
    LANDMARK_NAMES,
    BadImageError,
    Detection,
    Detector,
    ImageTooLargeError,
    check_image,
)
from lfr.vision.plugins import PluginRegistry

DetectorFactory = Callable[[ModelCard, Settings], Detector]
_REGISTRY: PluginRegistry[Detector] = PluginRegistry("detector")
register_detector = _REGISTRY.register
detector_types = _REGISTRY.types
create_detector = _REGISTRY.create


from lfr.vision.detectors import mtcnn as _mtcnn  # noqa: E402,F401  (registers "mtcnn")
from lfr.vision.detectors import yunet as _yunet  # noqa: E402,F401  (registers "yunet")

__all__ = [
    "LANDMARK_NAMES",
    "BadImageError",
    "Detection",
    "Detector",
    "ImageTooLargeError",
    "check_image",
    "create_detector",
    "detector_types",
    "register_detector",
]
