"""The photo's subject: confident detections before unsure ones, then the larger width x score."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lfr.vision.detectors.base import Detection
from lfr.vision.face_choice import choose_face, order_detections, subject_key


def _det(width: float, score: float, x: float = 0.0) -> Detection:
    return Detection(bbox=(x, 0.0, width, width), landmarks=np.zeros((5, 2), np.float32), score=score)


@dataclass(frozen=True)
class _Face:
    detection: Detection


def test_a_larger_unsure_box_loses_to_a_confident_face() -> None:
    """A 400 px box at 0.75 (a shoulder, a print) against a 120 px face at 0.999: the face comes first."""
    shoulder, face = _det(400, 0.75), _det(120, 0.999, x=500)
    assert order_detections([shoulder, face], min_score=0.9) == [face, shoulder]
    assert choose_face([_Face(shoulder), _Face(face)], 0.9) == _Face(face)


def test_among_confident_faces_the_larger_wins() -> None:
    """Scores 0.99 and 0.999 differ by less than the sizes do: the 200 px face is the subject."""
    small, large = _det(80, 0.999), _det(200, 0.99, x=300)
    assert order_detections([small, large], 0.9) == [large, small]


def test_among_unsure_boxes_width_is_weighed_by_score() -> None:
    """No confident face: 150 x 0.85 = 127.5 beats 160 x 0.72 = 115.2, although the second is wider."""
    a, b = _det(150, 0.85), _det(160, 0.72, x=300)
    assert order_detections([b, a], 0.9) == [a, b]
    assert subject_key(a, 0.9) < subject_key(b, 0.9)


def test_the_confidence_boundary_follows_the_setting() -> None:
    face, box = _det(100, 0.95), _det(300, 0.85, x=200)
    assert order_detections([box, face], 0.9)[0] is face
    assert order_detections([box, face], 0.8)[0] is box  # both confident at 0.8: the larger wins


def test_empty_and_stable() -> None:
    assert choose_face([], 0.9) is None
    a, b = _det(100, 0.99), _det(100, 0.99, x=200)
    assert order_detections([a, b], 0.9) == [a, b]
