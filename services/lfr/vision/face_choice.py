"""Which detection in a photo is its subject: confidence first, then size.

Why not simply the largest box: on in-the-wild photos a detector also fires, at lower confidence, on
shoulders, T-shirt prints or a guitar, and such a box is often larger than the real face. Taking the largest
box then enrols (or searches, or scores in an evaluation) something that is not a face, and strangers match
it. Enrolment, ``lfr eval`` and retrospective search all pick faces through this one rule, so a photo means
the same subject everywhere:

1. detections the detector is confident about (score >= ``min_score``, the quality gate's
   ``quality.min_detector_score``) come before any that it is not;
2. within each of those two tiers, the larger ``width x score`` comes first: among confident faces that is
   essentially the largest face (scores differ by a few hundredths), among the rest a less certain box needs
   to be proportionally larger to win.

A photo whose chosen face is still below ``min_score`` has no confident face at all: callers that must not
guess (enrolment) refuse it; evaluations use it and count it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar

from lfr.vision.detectors.base import Detection


class HasDetection(Protocol):
    @property
    def detection(self) -> Detection: ...


F = TypeVar("F", bound=HasDetection)


def subject_key(d: Detection, min_score: float) -> tuple[int, float]:
    """Sort key, smallest first = most likely the photo's subject."""
    confident = d.score >= min_score
    return (0 if confident else 1, -float(d.bbox[2]) * float(d.score))


def order_detections(detections: Sequence[Detection], min_score: float) -> list[Detection]:
    """``detections`` with the most likely subject first (stable for equal keys)."""
    return sorted(detections, key=lambda d: subject_key(d, min_score))


def choose_face(faces: Sequence[F], min_score: float) -> F | None:
    """The most likely subject among analysed faces (anything with a ``detection``), or None if empty."""
    if not faces:
        return None
    return min(faces, key=lambda f: subject_key(f.detection, min_score))
