"""Masking styles, applied in place to an image plane (a BGR image or one plane of a YUV frame).

Why so coarse: a mask must leave nothing a person or a detector could recognise. ``blur`` keeps only
BLUR_SAMPLES samples across the covered box, blended smoothly (a colour gradient, no eyes or mouth),
``pixelate`` keeps PIXEL_BLOCKS blocks across, and ``box`` fills the box. The covered box is already the
face plus a margin, so the face itself spans fewer samples still. Measured on the synthetic clips of
tests/integration/redact: with 3 or 4 blur samples, or 6 pixel blocks, the face-coloured middle framed by
hair was still found as a face by the detector at lowered thresholds (scores 0.43-0.54); at 2 samples and
4 blocks nothing was. Working on the decoded planes (not a BGR copy)
spares a colour conversion per frame for the frames that need no detection.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Literal

import cv2
import numpy as np

from lfr.redact.tracks import Box

Style = Literal["blur", "pixelate", "box"]
STYLES: tuple[Style, ...] = ("blur", "pixelate", "box")
BLUR_SAMPLES = 2
PIXEL_BLOCKS = 4
# YUV plane values of black (limited range) for ``box``; a BGR image gets 0.
Y_BLACK, C_NEUTRAL = 16, 128


def _bounds(box: Box, sx: float, sy: float, width: int, height: int) -> tuple[int, int, int, int] | None:
    """Integer bounds that contain the whole box, scaled to a plane subsampled by (sx, sy)."""
    x, y, w, h = box
    x1, y1 = max(math.floor(x / sx), 0), max(math.floor(y / sy), 0)
    x2, y2 = min(math.ceil((x + w) / sx), width), min(math.ceil((y + h) / sy), height)
    if x2 <= x1 or y2 <= y1:
        return None
    return x1, y1, x2, y2


def cover(plane: np.ndarray, bounds: tuple[int, int, int, int], style: Style, fill: int) -> None:
    x1, y1, x2, y2 = bounds
    region = plane[y1:y2, x1:x2]
    h, w = region.shape[:2]
    if style == "box":
        region[...] = fill
        return
    across = BLUR_SAMPLES if style == "blur" else PIXEL_BLOCKS
    n = max(1, min(across, w))
    m = max(1, min(h, round(across * h / max(w, 1))))
    small = cv2.resize(region, (n, m), interpolation=cv2.INTER_AREA)
    interp = cv2.INTER_LINEAR if style == "blur" else cv2.INTER_NEAREST
    big = cv2.resize(small, (w, h), interpolation=interp)
    region[...] = big.reshape(region.shape)


def mask_image(image: np.ndarray, boxes: Iterable[Box], style: Style) -> None:
    """Cover each box of a BGR image in place."""
    h, w = image.shape[:2]
    for box in boxes:
        b = _bounds(box, 1.0, 1.0, w, h)
        if b is not None:
            cover(image, b, style, 0)


Saved = list[tuple[int, tuple[int, int, int, int], np.ndarray]]


def save_regions(planes: Sequence[np.ndarray], width: int, height: int, boxes: Iterable[Box]) -> Saved:
    """Copies of the boxes' pixels on every plane (bounds rounded inwards: only pixels fully inside)."""
    out: Saved = []
    for index, plane in enumerate(planes):
        ph, pw = plane.shape[:2]
        sx, sy = width / pw, height / ph
        for x, y, w, h in boxes:
            x1, y1 = max(math.ceil(x / sx), 0), max(math.ceil(y / sy), 0)
            x2, y2 = min(math.floor((x + w) / sx), pw), min(math.floor((y + h) / sy), ph)
            if x2 > x1 and y2 > y1:
                out.append((index, (x1, y1, x2, y2), plane[y1:y2, x1:x2].copy()))
    return out


def restore_regions(planes: Sequence[np.ndarray], saved: Saved) -> None:
    for index, (x1, y1, x2, y2), pixels in saved:
        planes[index][y1:y2, x1:x2] = pixels


def mask_planes(
    planes: Sequence[np.ndarray], width: int, height: int, boxes: Iterable[Box], style: Style
) -> None:
    """Cover each box (in frame pixels) on every plane of a planar YUV frame in place.

    A chroma plane's subsampling is read from its size, and its bounds are rounded outwards, so the
    colour of a face is covered at least as far as its brightness.
    """
    boxes = list(boxes)
    for index, plane in enumerate(planes):
        ph, pw = plane.shape[:2]
        sx, sy = width / pw, height / ph
        fill = Y_BLACK if index == 0 else C_NEUTRAL
        for box in boxes:
            b = _bounds(box, sx, sy, pw, ph)
            if b is not None:
                cover(plane, b, style, fill)
