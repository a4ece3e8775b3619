"""The one image-file vocabulary: which suffixes count as images, how a folder is listed, how a file is read.

Why one module: enrolment, retrospective search, redaction, evaluation and calibration each kept their own
suffix set (four different contents), so a ``.webp`` custody photo was enrolled by one path and skipped by
another. Every reader in the project takes these definitions; OpenCV decodes all of the suffixes below.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm"})


def is_image_path(path: Path) -> bool:
    """True for a file name whose suffix is one of :data:`IMAGE_SUFFIXES` (case-insensitive)."""
    return path.suffix.lower() in IMAGE_SUFFIXES


def list_images(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursively), sorted so every run sees the same order."""
    return sorted(p for p in Path(folder).rglob("*") if p.is_file() and is_image_path(p))


def shrink_to(image: np.ndarray, max_side: int | None) -> np.ndarray:
    """``image`` scaled down (area interpolation) to a longer side of ``max_side`` at most; never enlarged."""
    h, w = image.shape[:2]
    if max_side and max(h, w) > max_side:
        f = max_side / max(h, w)
        return cv2.resize(image, (round(w * f), round(h * f)), interpolation=cv2.INTER_AREA)
    return image


def decode_image(data: bytes | np.ndarray, max_side: int | None = None) -> np.ndarray | None:
    """BGR uint8 image from encoded bytes (grey files as 3 equal channels); None when undecodable."""
    buf = data if isinstance(data, np.ndarray) else np.frombuffer(data, np.uint8)
    if buf.size == 0:
        return None
    img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if img is None:
        return None
    return shrink_to(img, max_side)


def read_image(path: Path, max_side: int | None = None) -> np.ndarray | None:
    """BGR uint8 image read from ``path`` (any file name), shrunk to ``max_side``; None if unreadable."""
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError:
        return None
    return decode_image(data, max_side)
