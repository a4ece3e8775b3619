"""Detector plug-ins, registered by model-card ``type`` (one module per backend, like Frigate's detectors).

A backend module calls :func:`register_detector` at import time; :func:`create_detector` picks the factory
named by the card. Adding a backend means adding a module here and naming it in ``_BACKENDS``, and, when it
has settings, a pydantic-only ``<name>_settings.py`` beside it that :mod:`lfr.core.config` composes.

The backends load on first use, not on import: the settings tree imports the backends' settings modules
from this package, and the backends themselves import the settings tree.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING

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

if TYPE_CHECKING:
    from lfr.core.config import Settings

DetectorFactory = Callable[[ModelCard, "Settings"], Detector]
_REGISTRY: PluginRegistry[Detector] = PluginRegistry("detector")
register_detector = _REGISTRY.register
_BACKENDS = ("mtcnn", "yunet")  # modules of this package; each registers its card type on import


def _load_backends() -> None:
    for name in _BACKENDS:
        importlib.import_module(f"{__name__}.{name}")


def detector_types() -> list[str]:
    """The card types a detector plug-in is registered for."""
    _load_backends()
    return _REGISTRY.types()


def create_detector(card: ModelCard, settings: Settings) -> Detector:
    """The detector plug-in for ``card`` (CardError naming the known types when none is registered)."""
    _load_backends()
    return _REGISTRY.create(card, settings)


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
