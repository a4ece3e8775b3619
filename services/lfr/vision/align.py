"""Face alignment: warp a face so its five landmarks land on an embedder's chip template.

Why least squares over all five points (Umeyama's similarity fit) rather than an exact three-point affine:
landmarks are noisy, and a similarity transform (rotation, uniform scale, translation; no shear, no
reflection) is what the embedders were trained with (dlib's get_face_chip, ArcFace's norm_crop).

Large faces are pre-shrunk with INTER_AREA before the bilinear warp, as dlib's chip extractor does with its
image pyramid, so a 600 px face squeezed into a 150 px chip is not aliased.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from lfr.vision.cards import ChipTemplate


class AlignmentError(ValueError):
    """The landmarks are degenerate (coincident points, NaN) and no transform can be fitted."""


def similarity_transform(src_pts: np.ndarray, dst_pts: np.ndarray) -> np.ndarray:
    """Least-squares similarity transform (Umeyama 1991) mapping ``src_pts`` onto ``dst_pts``.

    Returns a 2x3 float64 matrix ``M`` with ``dst ≈ M[:, :2] @ src + M[:, 2]``. Reflections are excluded.
    """
    src = np.asarray(src_pts, dtype=np.float64).reshape(-1, 2)
    dst = np.asarray(dst_pts, dtype=np.float64).reshape(-1, 2)
    if src.shape != dst.shape or len(src) < 2:
        raise AlignmentError("need at least two corresponding points")
    if not (np.isfinite(src).all() and np.isfinite(dst).all()):
        raise AlignmentError("landmarks contain NaN or infinity")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s_c, d_c = src - mu_s, dst - mu_d
    var_s = (s_c**2).sum() / len(src)
    if var_s < 1e-12:
        raise AlignmentError("landmarks are coincident")
    cov = d_c.T @ s_c / len(src)
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1.0
    rot = u @ np.diag(d) @ vt
    scale = float((sig * d).sum() / var_s)
    m = np.empty((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - scale * rot @ mu_s
    return m


def transform_points(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    p = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
    return np.asarray(p @ m[:, :2].T + m[:, 2])


def invert_affine(m: np.ndarray) -> np.ndarray:
    a = np.linalg.inv(m[:, :2])
    return np.hstack([a, (-a @ m[:, 2])[:, None]])


def warp_to_chip(image_bgr: np.ndarray, m: np.ndarray, size: int) -> np.ndarray:
    """Warp ``image_bgr`` into a size x size chip with image->chip matrix ``m`` (zero outside the frame).

    When the chip is more than twice smaller than the face, the region the chip reads is first halved with
    ``cv2.pyrDown`` (the same 5-tap [1 4 6 4 1] Gaussian as dlib's ``pyramid_down<2>``) until the final
    bilinear step decimates by less than two, as dlib's ``extract_image_chip`` does.
    """
    scale = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
    src = image_bgr
    if scale < 0.5:
        inv = invert_affine(m)
        corners = transform_points(inv, np.array([[0, 0], [size, 0], [0, size], [size, size]], float))
        margin = 8.0 / scale
        x0 = int(max(np.floor(corners[:, 0].min() - margin), 0))
        y0 = int(max(np.floor(corners[:, 1].min() - margin), 0))
        x1 = int(min(np.ceil(corners[:, 0].max() + margin), image_bgr.shape[1]))
        y1 = int(min(np.ceil(corners[:, 1].max() + margin), image_bgr.shape[0]))
        if x1 - x0 >= 4 and y1 - y0 >= 4:
            src = image_bgr[y0:y1, x0:x1]
            # chip = A @ img + t with img = small * 2^k + (x0, y0): fold the crop offset, then each halving.
            m = np.hstack([m[:, :2], (m[:, :2] @ np.array([x0, y0], dtype=np.float64) + m[:, 2])[:, None]])
            while scale < 0.5 and min(src.shape[:2]) >= 8:
                src = cv2.pyrDown(src)
                m = np.hstack([m[:, :2] * 2.0, m[:, 2:]])
                scale *= 2.0
    return cv2.warpAffine(
        src, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0)
    )


def align(
    image_bgr: np.ndarray, landmarks5: np.ndarray | Sequence[Sequence[float]], template: ChipTemplate
) -> np.ndarray:
    """Chip (uint8 BGR, template.size square) with ``landmarks5`` mapped onto ``template.points``."""
    m = similarity_transform(np.asarray(landmarks5, dtype=np.float64), np.asarray(template.points))
    return warp_to_chip(image_bgr, m, template.size)
