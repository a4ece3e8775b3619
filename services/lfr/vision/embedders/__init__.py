"""Embedder plug-ins, registered by model-card ``type``.

The generic ``onnx-embedder`` backend serves any single-input, single-output ONNX face embedder whose card
describes its input size, channel order, layout, normalisation, chip template and metric, so a force's own
ArcFace-style model plugs in with a card and no code.
"""

from __future__ import annotations

from collections.abc import Callable

from lfr.core.config import Settings
from lfr.vision.cards import ModelCard
from lfr.vision.embedders.base import Embedder, EmbedderError
from lfr.vision.plugins import PluginRegistry

EmbedderFactory = Callable[[ModelCard, Settings], Embedder]
_REGISTRY: PluginRegistry[Embedder] = PluginRegistry("embedder", article="an")
register_embedder = _REGISTRY.register
embedder_types = _REGISTRY.types
create_embedder = _REGISTRY.create


from lfr.vision.embedders import onnx_embedder as _onnx  # noqa: E402,F401  (registers "onnx-embedder")

__all__ = ["Embedder", "EmbedderError", "create_embedder", "embedder_types", "register_embedder"]
