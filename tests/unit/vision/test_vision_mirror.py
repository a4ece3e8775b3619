"""Mirrored embeddings: how a chip's and its mirror's vectors combine, and what a template is made of."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from lfr.vision.cards import ModelCard
from lfr.vision.mirror import combine_mirrored, mirrored, template_embeddings


class _Card:
    def __init__(self, metric: str) -> None:
        self.metric = metric


class _LopsidedEmbedder:
    """A stand-in whose vector is the mean colour of the chip's left and right halves: a mirror image
    swaps them, so the combination is checkable by hand."""

    model_id = "lopsided:1"
    chip_size = 4

    def __init__(self, metric: str) -> None:
        self.card: ModelCard = _Card(metric)  # type: ignore[assignment]
        self.calls: list[int] = []

    def align(self, image_bgr: np.ndarray, landmarks: np.ndarray, scheme: str = "mtcnn5") -> np.ndarray:
        raise NotImplementedError

    def embed(self, chips: Sequence[np.ndarray]) -> np.ndarray:
        self.calls.append(len(chips))
        return np.array([[c[:, :2].mean(), c[:, 2:].mean()] for c in chips], np.float32).reshape(-1, 2)


def _chip(left: float, right: float) -> np.ndarray:
    c = np.zeros((4, 4, 3), np.uint8)
    c[:, :2], c[:, 2:] = left, right
    return c


def test_mirrored_flips_left_to_right_into_a_contiguous_array() -> None:
    c = _chip(10, 200)
    m = mirrored(c)
    assert m.flags.c_contiguous and np.array_equal(m[:, :2], c[:, 2:]) and np.array_equal(m[:, 2:], c[:, :2])


def test_cosine_combination_averages_unit_vectors_and_l2_the_raw_ones() -> None:
    a, b = np.array([[3.0, 4.0]]), np.array([[0.0, 10.0]])
    assert combine_mirrored(a, b, "COSINE") == pytest.approx(np.array([[0.3, 0.9]]))
    assert combine_mirrored(a, b, "L2") == pytest.approx(np.array([[1.5, 7.0]]))


@pytest.mark.parametrize("metric", ["COSINE", "L2"])
def test_template_embeddings_run_the_model_once_on_chips_and_mirrors(metric: str) -> None:
    emb = _LopsidedEmbedder(metric)
    chips = [_chip(10, 200), _chip(50, 50)]
    out = template_embeddings(emb, chips)
    assert emb.calls == [4], "one model call for two chips and their two mirrors"
    expected = combine_mirrored(emb.embed(chips), emb.embed([mirrored(c) for c in chips]), metric)
    assert out == pytest.approx(expected)
    # A lopsided chip's template is symmetric in its two halves; a plain embedding is not.
    assert out[0][0] == pytest.approx(out[0][1]) and emb.embed(chips[:1])[0][0] != emb.embed(chips[:1])[0][1]


def test_template_embeddings_of_no_chips_is_empty() -> None:
    emb = _LopsidedEmbedder("COSINE")
    assert template_embeddings(emb, []).shape == (0, 2)
