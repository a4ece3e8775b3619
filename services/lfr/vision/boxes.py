"""Box geometry shared by the detector, the tracker-facing code and the tests: IoU and greedy NMS.

Why a module of its own: NMS runs several times per frame inside MTCNN (per pyramid level, across levels,
after R-Net and O-Net), so it must be vectorised, and it must be testable on its own against a slow,
obviously-correct reference.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np


def iou_one_to_many(
    box: np.ndarray, boxes: np.ndarray, mode: Literal["union", "min"] = "union"
) -> np.ndarray:
    """IoU (or intersection over the smaller area for ``mode="min"``) of one x1,y1,x2,y2 box vs many."""
    xx1 = np.maximum(box[0], boxes[:, 0])
    yy1 = np.maximum(box[1], boxes[:, 1])
    xx2 = np.minimum(box[2], boxes[:, 2])
    yy2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(xx2 - xx1, 0, None) * np.clip(yy2 - yy1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    denom = np.minimum(area, areas) if mode == "min" else area + areas - inter
    return np.asarray(inter / np.maximum(denom, 1e-12))


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of x1,y1,x2,y2 boxes: shape (len(a), len(b))."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    xx1 = np.maximum(a[:, None, 0], b[None, :, 0])
    yy1 = np.maximum(a[:, None, 1], b[None, :, 1])
    xx2 = np.minimum(a[:, None, 2], b[None, :, 2])
    yy2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(xx2 - xx1, 0, None) * np.clip(yy2 - yy1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return np.asarray(inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-12))


MATRIX_NMS_MAX = 1024


def nms(
    boxes: np.ndarray, scores: np.ndarray, threshold: float, mode: Literal["union", "min"] = "union"
) -> np.ndarray:
    """Greedy non-maximum suppression; returns kept indices, highest score first.

    Exact greedy semantics (a box suppressed by a kept box cannot suppress others). Up to
    ``MATRIX_NMS_MAX`` boxes the whole overlap matrix is computed in one vectorised step and the greedy
    pass only ORs boolean rows; above that (memory grows with the square) each kept box is compared with
    the remaining ones in one numpy call, so the Python loop runs once per kept box, never once per pair.
    """
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    n = len(boxes)
    if n == 0:
        return np.empty(0, dtype=np.int64)
    order = np.argsort(-np.asarray(scores), kind="stable")
    if n <= MATRIX_NMS_MAX:
        b = boxes[order]
        x1, y1, x2, y2 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
        area = (x2 - x1) * (y2 - y1)
        iw = np.clip(np.minimum(x2[:, None], x2[None, :]) - np.maximum(x1[:, None], x1[None, :]), 0, None)
        ih = np.clip(np.minimum(y2[:, None], y2[None, :]) - np.maximum(y1[:, None], y1[None, :]), 0, None)
        inter = iw * ih
        if mode == "min":
            denom = np.minimum(area[:, None], area[None, :])
        else:
            denom = area[:, None] + area[None, :] - inter
        # over[i, j]: box j (scored lower than i) overlaps i beyond the threshold.
        over = np.triu(inter > threshold * np.maximum(denom, 1e-12), 1)
        alive = np.ones(n, dtype=bool)
        for i in np.flatnonzero(over.any(axis=1)).tolist():
            if alive[i]:
                alive[over[i]] = False
        return order[alive]
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        if order.size == 1:
            break
        rest = order[1:]
        overlap = iou_one_to_many(boxes[i], boxes[rest], mode)
        order = rest[overlap <= threshold]
    return np.asarray(keep, dtype=np.int64)


def xywh_to_xyxy(boxes: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    """x, y, width, height rows (detections, labels, tracks) as corner rows x1, y1, x2, y2."""
    a = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.column_stack([a[:, 0], a[:, 1], a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]])
