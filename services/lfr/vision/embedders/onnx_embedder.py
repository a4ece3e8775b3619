"""Generic ONNX face embedder driven entirely by its model card.

Why generic: the default dlib ResNet (150x150 RGB, raw pixels, 128-d, L2) and a typical ArcFace model
(112x112 RGB, (x - 127.5) / 127.5, 512-d, COSINE) differ only in facts a card states, so one backend
serves both and a force adds a model without code. Chips arrive as OpenCV BGR uint8; the card decides the
channel order, normalisation and layout the network sees.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lfr.core.config import Settings
from lfr.vision.align import align as align_chip
from lfr.vision.cards import CardError, ModelCard
from lfr.vision.embedders import register_embedder
from lfr.vision.embedders.base import EmbedderError
from lfr.vision.mirror import combine_mirrored, mirrored
from lfr.vision.runtime import make_session


class OnnxEmbedder:
    def __init__(self, card: ModelCard, settings: Settings) -> None:
        card.verify_files()
        if card.input.size is None or card.input.size[0] != card.input.size[1]:
            raise CardError(f"card {card.name}: input.size must be a square (width, height)")
        self.card = card
        self.model_id = card.model_id
        self.chip_size = int(card.input.size[0])
        self.batch_size = settings.models.embed_batch_size
        self.flip = settings.models.embed_flip
        self._session = make_session(card.file("model"), settings.models)
        inputs = self._session.get_inputs()
        if len(inputs) != 1:
            raise CardError(f"card {card.name}: the ONNX model must take exactly one input")
        self._input = inputs[0].name
        outputs = [o.name for o in self._session.get_outputs()]
        self._output = card.output_name or outputs[0]
        if self._output not in outputs:
            raise CardError(f"card {card.name}: output {self._output!r} not in model outputs {outputs}")
        self._mean = np.asarray(card.preprocessing.mean, dtype=np.float32)
        self._inv_std = 1.0 / np.asarray(card.preprocessing.std, dtype=np.float32)
        self._identity = bool(np.all(self._mean == 0) and np.all(self._inv_std == 1))

    def align(self, image_bgr: np.ndarray, landmarks: np.ndarray, scheme: str = "mtcnn5") -> np.ndarray:
        try:
            template = self.card.template_for(scheme)
        except CardError as exc:
            raise EmbedderError(str(exc)) from None
        if template.size != self.chip_size:
            raise CardError(f"card {self.card.name}: template {scheme} size differs from input size")
        return align_chip(image_bgr, landmarks, template)

    @property
    def input_name(self) -> str:
        return self._input

    def prepare(self, chips: Sequence[np.ndarray]) -> np.ndarray:
        """The network's input tensor for ``chips`` (also what quantisation calibrates on)."""
        batch = np.stack([self._check(c) for c in chips])  # N,H,W,3 BGR uint8
        if self.card.input.channels == "RGB":
            batch = batch[..., ::-1]
        x = batch.astype(np.float32)
        if not self._identity:
            x = (x - self._mean) * self._inv_std
        if self.card.input.layout == "NCHW":
            x = x.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(x)

    def _check(self, chip: np.ndarray) -> np.ndarray:
        if chip.dtype != np.uint8 or chip.shape != (self.chip_size, self.chip_size, 3):
            raise EmbedderError(
                f"chips must be uint8 {self.chip_size}x{self.chip_size}x3 BGR, got {chip.dtype} {chip.shape}"
            )
        return chip

    def embed(self, chips: Sequence[np.ndarray]) -> np.ndarray:
        """Embeddings (N, dim) float32 in the card's metric space, computed in batches.

        With ``models.embed_flip`` each chip is also embedded mirrored and the two are combined (unit
        vectors summed for COSINE, averaged for L2): a face seen slightly from one side and its mirror
        image average out part of the pose, at twice the model time (docs/models.md has the measured gain).
        """
        if not self.flip or len(chips) == 0:
            return self._embed(chips)
        both = self._embed([*chips, *(mirrored(c) for c in chips)])
        return combine_mirrored(both[: len(chips)], both[len(chips) :], self.card.metric)

    def _embed(self, chips: Sequence[np.ndarray]) -> np.ndarray:
        dim = int(self.card.dim or 0)
        if len(chips) == 0:
            return np.empty((0, dim), dtype=np.float32)
        parts = []
        for i in range(0, len(chips), self.batch_size):
            x = self.prepare(chips[i : i + self.batch_size])
            (out,) = self._session.run([self._output], {self._input: x})
            parts.append(np.asarray(out, dtype=np.float32).reshape(len(x), -1))
        emb = np.concatenate(parts)
        if emb.shape[1] != dim:
            raise EmbedderError(f"model {self.card.name} returned {emb.shape[1]}-d vectors, card says {dim}")
        return emb


@register_embedder("onnx-embedder")
def _factory(card: ModelCard, settings: Settings) -> OnnxEmbedder:
    return OnnxEmbedder(card, settings)
