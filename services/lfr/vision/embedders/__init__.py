"""Embedder plug-ins, registered by model-card ``type``.

The generic ``onnx-embedder`` backend serves any single-input, single-output ONNX face embedder whose card
describes its input size, channel order, layout, normalisation, chip template and metric, so a force's own
ArcFace-style model plugs in with a card and no code.
"""

from __future__ import annotations

from collections.abc import Callable

from lfr.core.config import Settings
from lfr.vision.cards import CardError, ModelCard
from lfr.vision.embedders.base import Embedder, EmbedderError

EmbedderFactory = Callable[[ModelCard, Settings], Embedder]
_REGISTRY: dict[str, EmbedderFactory] = {}


def register_embedder(card_type: str) -> Callable[[EmbedderFactory], EmbedderFactory]:
    def deco(factory: EmbedderFactory) -> EmbedderFactory:
        _REGISTRY[card_type] = factory
        return factory

    return deco


def embedder_types() -> list[str]:
    return sorted(_REGISTRY)


def create_embedder(card: ModelCard, settings: Settings) -> Embedder:
    if card.kind != "embedder":
        raise CardError(f"card {card.name} is a {card.kind}, not an embedder")
    factory = _REGISTRY.get(card.type)
    if factory is None:
        raise CardError(f"card {card.name} has embedder type {card.type!r}; known types: {embedder_types()}")
    return factory(card, settings)


from lfr.vision.embedders import onnx_embedder as _onnx  # noqa: E402,F401  (registers "onnx-embedder")

__all__ = ["Embedder", "EmbedderError", "create_embedder", "embedder_types", "register_embedder"]
