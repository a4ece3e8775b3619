"""NMS and IoU against slow, obviously-correct references."""

from __future__ import annotations

import numpy as np
import pytest

from lfr.vision import boxes as B


def _slow_iou(a: np.ndarray, b: np.ndarray, mode: str) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    aa = (a[2] - a[0]) * (a[3] - a[1])
    ab = (b[2] - b[0]) * (b[3] - b[1])
    return inter / (min(aa, ab) if mode == "min" else aa + ab - inter)


def _slow_nms(boxes: np.ndarray, scores: np.ndarray, t: float, mode: str) -> list[int]:
    order = sorted(range(len(boxes)), key=lambda i: (-scores[i], i))
    keep: list[int] = []
    for i in order:
        if all(_slow_iou(boxes[i], boxes[k], mode) <= t for k in keep):
            keep.append(i)
    return keep


def _random_boxes(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 300, (n, 2))
    wh = rng.uniform(10, 90, (n, 2))
    return np.hstack([xy, xy + wh]).astype(np.float32), rng.random(n)


@pytest.mark.parametrize("mode", ["union", "min"])
@pytest.mark.parametrize("n", [1, 7, 150])
def test_nms_matches_reference_on_both_paths(n: int, mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    boxes, scores = _random_boxes(n, n)
    expected = _slow_nms(boxes, scores, 0.4, mode)
    assert B.nms(boxes, scores, 0.4, mode).tolist() == expected
    monkeypatch.setattr(B, "MATRIX_NMS_MAX", 0)  # force the per-kept-box path
    assert B.nms(boxes, scores, 0.4, mode).tolist() == expected


def test_nms_keeps_highest_and_separate_boxes() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], np.float32)
    keep = B.nms(boxes, np.array([0.5, 0.9, 0.7]), 0.5)
    assert keep.tolist() == [1, 2]
    assert B.nms(np.empty((0, 4)), np.empty(0), 0.5).size == 0


def test_suppressed_box_cannot_suppress() -> None:
    # 0 suppresses 1; 1 would suppress 2, but 1 is gone, and 2 barely overlaps 0: greedy keeps 0 and 2.
    boxes = np.array([[0, 0, 10, 10], [4, 0, 14, 10], [8, 0, 18, 10]], np.float32)
    assert B.nms(boxes, np.array([0.9, 0.8, 0.7]), 0.3).tolist() == [0, 2]


def test_iou_matrix() -> None:
    a = np.array([[0, 0, 10, 10]], float)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], float)
    np.testing.assert_allclose(B.iou_matrix(a, b), [[1.0, 50 / 150, 0.0]])
    np.testing.assert_allclose(B.iou_one_to_many(a[0], b, "min"), [1.0, 0.5, 0.0])
