"""FaceAnalyzer: detect, assess, align and embed every face in an image; enrol exactly one.

Why one facade: ingest (live frames), retrospective search (stills) and watchlist enrolment must treat faces
identically (same detector thresholds, same chip template, same quality gate, same choice of the photo's
subject: lfr.vision.face_choice), or a probe and a watchlist image of the same person end up further apart
than they should. Logs carry counts and timings only, never pixels or vectors.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace

import cv2
import numpy as np

from lfr.core.config import Settings
from lfr.vision import templates
from lfr.vision.cards import find_card
from lfr.vision.detectors import Detection, Detector, check_image, create_detector
from lfr.vision.embedders import Embedder, create_embedder
from lfr.vision.face_choice import order_detections
from lfr.vision.mirror import template_embeddings
from lfr.vision.quality import QualityReport, assess, for_detector

log = logging.getLogger(__name__)

# Tight crops (LFW-style, face filling the frame) get this much border on each side, as a fraction of the
# image size, so the detector sees the context it was trained with.
TIGHT_PAD = 0.5
TIGHT_FILL = (0, 0, 0)


class EnrolmentError(ValueError):
    """An enrolment image cannot be used; the message says why and what to do."""


class NoFaceError(EnrolmentError):
    pass


class MultipleFacesError(EnrolmentError):
    pass


class PoorQualityError(EnrolmentError):
    def __init__(self, message: str, quality: QualityReport) -> None:
        super().__init__(message)
        self.quality = quality


class LowConfidenceError(PoorQualityError):
    """The most likely face is one the detector is unsure of: it may be a shoulder, a print, an object."""


@dataclass(frozen=True)
class AnalysedFace:
    detection: Detection
    quality: QualityReport
    chip: np.ndarray
    embedding: np.ndarray
    fell_back: bool = False

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        return self.detection.bbox


def load_detector(settings: Settings) -> Detector:
    """The detector named by ``settings.models.detector`` from ``settings.models_dir``."""
    return create_detector(find_card(settings.models_dir, settings.models.detector), settings)


def load_embedder(settings: Settings) -> Embedder:
    """The embedder named by ``settings.models.embedder`` from ``settings.models_dir``."""
    return create_embedder(find_card(settings.models_dir, settings.models.embedder), settings)


def centre_detection(height: int, width: int) -> Detection:
    """A synthetic detection for a tight face crop: the central square, landmarks at MTCNN's mean layout."""
    side = float(min(height, width))
    x0, y0 = (width - side) / 2.0, (height - side) / 2.0
    rel = np.asarray(templates.MTCNN5_IN_BOX, dtype=np.float32)
    pts = np.stack([x0 + rel[:, 0] * side, y0 + rel[:, 1] * side], axis=1).astype(np.float32)
    return Detection(bbox=(x0, y0, side, side), landmarks=pts, score=0.0)


class FaceAnalyzer:
    def __init__(
        self, settings: Settings, detector: Detector | None = None, embedder: Embedder | None = None
    ) -> None:
        self.settings = settings
        self.detector = detector or load_detector(settings)
        self.embedder = embedder or load_embedder(settings)
        self.scheme = getattr(self.detector, "landmark_scheme", "mtcnn5")
        # Detection scores differ between detectors: the gates use this detector's own confident score.
        self.quality = for_detector(settings.quality, self.detector)

    def _detect(self, image: np.ndarray, pad_tight: bool) -> tuple[list[Detection], bool]:
        if not pad_tight:
            return self.detector.detect(image), False
        h, w = image.shape[:2]
        px, py = round(w * TIGHT_PAD), round(h * TIGHT_PAD)
        canvas = cv2.copyMakeBorder(image, py, py, px, px, cv2.BORDER_CONSTANT, value=TIGHT_FILL)
        found = self.detector.detect(canvas)
        out: list[Detection] = []
        for d in found:
            x, y, bw, bh = d.bbox
            lm = (d.landmarks - np.array([px, py], dtype=np.float32)).astype(np.float32)
            # Keep faces whose centre lies in the original image (the padding holds no real faces).
            cx, cy = x - px + bw / 2, y - py + bh / 2
            if 0 <= cx < w and 0 <= cy < h:
                out.append(replace(d, bbox=(x - px, y - py, bw, bh), landmarks=lm))
        if out:
            return out, False
        return [centre_detection(h, w)], True

    def analyse(self, image_bgr: np.ndarray, pad_tight: bool = False) -> list[AnalysedFace]:
        """Every detected face with its quality report, aligned chip and embedding, the photo's most likely
        subject first (confident faces before unsure ones, then by size: lfr.vision.face_choice).

        ``pad_tight=True`` is for pre-cropped faces: the image is padded before detection, and when nothing
        is found the centre of the image is used as the face (``fell_back=True`` on the result).
        """
        t0 = time.perf_counter()
        image = check_image(image_bgr, self.settings.detector.max_image_pixels)
        detections, fell_back = self._detect(image, pad_tight)
        detections = order_detections(detections, self.quality.detector_floor)
        chips = [self.embedder.align(image, d.landmarks, self.scheme) for d in detections]
        embeddings = self.embedder.embed(chips)
        faces = [
            AnalysedFace(d, assess(d, c, self.quality), c, e, fell_back)
            for d, c, e in zip(detections, chips, embeddings, strict=True)
        ]
        log.debug(
            "analysed image: %d faces (%d pass quality) in %.1f ms",
            len(faces),
            sum(f.quality.passed for f in faces),
            (time.perf_counter() - t0) * 1000,
        )
        return faces

    def enrol(self, image_bgr: np.ndarray, pad_tight: bool = False) -> AnalysedFace:
        """The single face of an enrolment photo; raises an EnrolmentError subclass otherwise."""
        faces = self.analyse(image_bgr, pad_tight=pad_tight)
        if not faces or faces[0].fell_back:
            raise NoFaceError("no face found in the enrolment image: use a clear, front-facing photo")
        q = self.quality
        min_px = q.min_face_px
        # Only confident detections count as another person: a blurry low-score blob in the background
        # must not make a clear single-subject photo unusable.
        large = [f for f in faces if f.detection.bbox[2] >= min_px and f.detection.score >= q.detector_floor]
        if len(large) > 1:
            raise MultipleFacesError(
                f"{len(large)} faces of at least {min_px} px found in the enrolment image: "
                "crop the photo to the subject's face"
            )
        face = faces[0]
        if face.detection.score < q.enrol_detector_floor:
            raise LowConfidenceError(
                "enrolment image rejected: the detector is unsure that the most likely face is a face "
                f"(score {face.detection.score:.2f} < quality.enrol_min_detector_score "
                f"{q.enrol_detector_floor:g}): use a clear, front-facing photo of the subject",
                face.quality,
            )
        if not face.quality.passed:
            raise PoorQualityError(
                "enrolment image rejected: " + "; ".join(face.quality.reasons), face.quality
            )
        return self.as_template(face)

    def as_template(self, face: AnalysedFace) -> AnalysedFace:
        """``face`` with the embedding an enrolment template holds: with ``models.mirror_templates`` its
        chip's embedding combined with its mirror image's (lfr.vision.mirror), otherwise unchanged (also
        when ``models.embed_flip`` already mirrors every chip)."""
        if not self.mirrors_templates:
            return face
        return replace(face, embedding=template_embeddings(self.embedder, [face.chip])[0])

    @property
    def mirrors_templates(self) -> bool:
        """Whether an enrolment template differs from a probe's embedding of the same photo."""
        models = self.settings.models
        return models.mirror_templates and not models.embed_flip
