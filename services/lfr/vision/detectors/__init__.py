"""Detector plug-ins, registered by model-card ``type`` (one module per backend, like Frigate's detectors).

A backend module calls :func:`register_detector` at import time; :func:`create_detector` picks the factory
named by the card. Adding a backend means adding a module here and importing it below, nothing else.
"""

from __future__ import annotations

from collections.abc import Callable

from lfr.core.config import Settings
from lfr.vision.cards import CardError, ModelCard
from lfr.vision.detectors.base import (
    LANDMARK_NAMES,
    BadImageError,
    Detection,
    Detector,
    ImageTooLargeError,
    check_image,
)

DetectorFactory = Callable[[ModelCard, Settings], Detector]
_REGISTRY: dict[str, DetectorFactory] = {}


def register_detector(card_type: str) -> Callable[[DetectorFactory], DetectorFactory]:
    def deco(factory: DetectorFactory) -> DetectorFactory:
        _REGISTRY[card_type] = factory
        return factory

    return deco


def detector_types() -> list[str]:
    return sorted(_REGISTRY)


def create_detector(card: ModelCard, settings: Settings) -> Detector:
    if card.kind != "detector":
        raise CardError(f"card {card.name} is a {card.kind}, not a detector")
    factory = _REGISTRY.get(card.type)
    if factory is None:
        raise CardError(f"card {card.name} has detector type {card.type!r}; known types: {detector_types()}")
    return factory(card, settings)


from lfr.vision.detectors import mtcnn as _mtcnn  # noqa: E402,F401  (registers "mtcnn")

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
