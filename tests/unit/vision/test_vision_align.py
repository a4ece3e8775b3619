"""Similarity transform (Umeyama) and chip warping."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lfr.vision.align import AlignmentError, align, similarity_transform, transform_points, warp_to_chip
from lfr.vision.cards import ChipTemplate
from lfr.vision.templates import MTCNN5_DLIB_CHIP, dlib5_template


def _sim(scale: float, angle: float, tx: float, ty: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[scale * c, -scale * s, tx], [scale * s, scale * c, ty]])


def test_recovers_exact_similarity() -> None:
    src = np.array([[10, 20], [40, 22], [25, 40], [12, 55], [38, 56]], float)
    m = _sim(1.7, 0.3, 5.0, -8.0)
    est = similarity_transform(src, transform_points(m, src))
    np.testing.assert_allclose(est, m, atol=1e-9)


def test_least_squares_with_noise_and_no_reflection() -> None:
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, (5, 2))
    m = _sim(0.8, -1.1, 30, 40)
    dst = transform_points(m, src) + rng.normal(0, 0.5, (5, 2))
    est = similarity_transform(src, dst)
    assert np.abs(est[:, :2] - m[:, :2]).max() < 0.02 and np.abs(est[:, 2] - m[:, 2]).max() < 2.0
    mirrored = src * np.array([-1, 1])
    refl = similarity_transform(src, mirrored)
    assert np.linalg.det(refl[:, :2]) > 0  # a rotation+scale, never a mirror


def test_degenerate_points_raise() -> None:
    with pytest.raises(AlignmentError):
        similarity_transform(np.zeros((5, 2)), np.ones((5, 2)))
    with pytest.raises(AlignmentError):
        similarity_transform(np.full((5, 2), np.nan), np.ones((5, 2)))


def test_align_puts_landmarks_on_template() -> None:
    tpl = ChipTemplate(size=150, padding=0.25, points=MTCNN5_DLIB_CHIP)
    img = np.zeros((400, 600, 3), np.uint8)
    # Draw 5 dots where a rotated, scaled face's landmarks would be, then align and find them in the chip.
    m = _sim(2.0, 0.25, 120, 60)
    pts = transform_points(m, np.asarray(MTCNN5_DLIB_CHIP))
    for i, (x, y) in enumerate(pts):
        cx, cy = round(x), round(y)
        img[cy - 2 : cy + 3, cx - 2 : cx + 3, i % 3] = 255
    chip = align(img, pts, tpl)
    assert chip.shape == (150, 150, 3) and chip.dtype == np.uint8
    for i, (x, y) in enumerate(MTCNN5_DLIB_CHIP):
        win = chip[int(y) - 3 : int(y) + 4, int(x) - 3 : int(x) + 4, i % 3]
        assert win.max() > 100, f"landmark {i} not at its template position"


def test_large_face_is_smoothed_not_aliased() -> None:
    # A 1-pixel checkerboard shrunk 6x must come out as flat grey, not a moire pattern.
    board = ((np.indices((900, 900)).sum(axis=0) % 2) * 255).astype(np.uint8)
    img = np.repeat(board[:, :, None], 3, axis=2)
    m = _sim(1 / 6, 0.0, 0.0, 0.0)
    chip = warp_to_chip(img, m, 150)
    assert abs(float(chip.mean()) - 127.5) < 8 and float(chip.std()) < 12


def test_dlib_template_geometry() -> None:
    pts = np.asarray(dlib5_template(150, 0.25))
    # Nose base on the vertical axis of the eye corners, eyes level.
    assert abs(pts[4, 0] - (pts[0, 0] + pts[2, 0]) / 2) < 0.01
    assert abs(pts[0, 1] - pts[2, 1]) < 0.1
