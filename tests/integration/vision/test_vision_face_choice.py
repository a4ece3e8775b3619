"""Enrolment, evaluation and retrospective search pick the face, not the largest box, on a real photo.

The photo: deepface_testset id11/img31.jpg, where MTCNN finds the subject's face (score ~1.0) and, at the
left edge, a blurred dark blob at ~0.72. Composed as a watchlist photo gone wrong would look, the blob
(enlarged 2x) above the subject's face (shrunk to 0.4x), the blob's box is far larger than the face, so the
old rule (largest box first) chose it. The detector is named (MTCNN), since it is its low-score box that the
photo shows.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import cv2
import numpy as np
import pytest

from lfr.core.config import Settings, load_settings
from lfr.evaluation.embedding import EvalEmbedder, read_image
from lfr.vision import FaceAnalyzer
from lfr.vision.pipeline import LowConfidenceError

PHOTO = Path("deepface_testset/images/id11/img31.jpg")
BLOB = (slice(450, 1000), slice(0, 400))  # rows, columns of the blob in the photo as read_image returns it
FACE = (slice(100, 800), slice(420, 1000))


@pytest.fixture(scope="module")
def mtcnn(models_dir: Path) -> FaceAnalyzer:
    return FaceAnalyzer(
        load_settings(models={"dir": str(models_dir), "detector": "mtcnn", "embedder": "dlib-resnet-v1"})
    )


@pytest.fixture(scope="module")
def photo(faces_dir: Path) -> np.ndarray:
    img = read_image(faces_dir / PHOTO)
    assert img is not None, PHOTO
    return img


def _composite(photo: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """(composite, the face part alone, the row where the face part starts)."""
    blob = cv2.resize(photo[BLOB], None, fx=2.0, fy=2.0, interpolation=cv2.INTER_CUBIC)
    face = cv2.resize(photo[FACE], None, fx=0.4, fy=0.4, interpolation=cv2.INTER_AREA)
    canvas = np.zeros((blob.shape[0] + face.shape[0], max(blob.shape[1], face.shape[1]), 3), np.uint8)
    canvas[: blob.shape[0], : blob.shape[1]] = blob
    canvas[blob.shape[0] :, : face.shape[1]] = face
    return canvas, face, blob.shape[0]


def _in_face_part(bbox: tuple[float, float, float, float], face_top: int) -> bool:
    return bbox[1] + bbox[3] / 2 > face_top


def test_the_photo_has_a_larger_low_score_box(mtcnn: FaceAnalyzer, photo: np.ndarray) -> None:
    """The premise of the tests below, checked on the detector itself."""
    canvas, _, face_top = _composite(photo)
    dets = mtcnn.detector.detect(canvas)
    largest = max(dets, key=lambda d: d.bbox[2])
    face = next(d for d in dets if _in_face_part(d.bbox, face_top))
    assert not _in_face_part(largest.bbox, face_top) and largest.score < 0.9
    assert face.score > 0.99 and largest.bbox[2] > 2 * face.bbox[2]


def test_enrolment_takes_the_face(mtcnn: FaceAnalyzer, photo: np.ndarray) -> None:
    canvas, face_only, face_top = _composite(photo)
    faces = mtcnn.analyse(canvas)
    assert _in_face_part(faces[0].bbox, face_top) and faces[0].detection.score > 0.99
    enrolled = mtcnn.enrol(canvas)
    assert _in_face_part(enrolled.bbox, face_top)
    # The enrolled vector is the subject's: close to the face photographed alone, far from the blob's.
    alone = mtcnn.analyse(face_only)[0].embedding
    card = mtcnn.embedder.card
    blob_vec = next(f for f in faces if not _in_face_part(f.bbox, face_top)).embedding
    assert card.is_match(float(card.distance(enrolled.embedding, alone)))
    assert not card.is_match(float(card.distance(blob_vec, alone)))


def test_evaluation_embeds_the_face(mtcnn: FaceAnalyzer, photo: np.ndarray) -> None:
    """lfr eval (and the retrospective gallery import, which uses the same embedder) score the face."""
    canvas, face_only, _ = _composite(photo)
    got = EvalEmbedder(mtcnn, tight="never").embed_image(canvas)
    assert got.status == "ok" and got.vector is not None
    alone = mtcnn.analyse(face_only)[0].embedding
    card = mtcnn.embedder.card
    assert card.is_match(float(card.distance(got.vector, alone)))


def test_enrolment_refuses_a_photo_whose_only_box_is_unsure(mtcnn: FaceAnalyzer, photo: np.ndarray) -> None:
    blob = np.ascontiguousarray(photo[BLOB])
    dets = mtcnn.detector.detect(blob)
    assert len(dets) == 1 and dets[0].score < 0.9  # the blob alone is still found, unsure
    with pytest.raises(LowConfidenceError, match="enrol_min_detector_score"):
        mtcnn.enrol(blob)
    # The setting is what keeps it off the watchlist: set low, the blob passes every other check.
    loose = FaceAnalyzer(
        load_settings(
            models={"dir": str(mtcnn.settings.models_dir), "detector": "mtcnn", "embedder": "dlib-resnet-v1"},
            quality={"enrol_min_detector_score": 0.5, "min_detector_score": 0.5},
        ),
        detector=mtcnn.detector,
        embedder=mtcnn.embedder,
    )
    assert loose.enrol(blob).detection.score < 0.9


@pytest.mark.integration
async def test_retrospective_search_lists_the_face_first(
    stack_settings: Settings, models_dir: Path, faces_dir: Path, photo: np.ndarray, tmp_path: Path
) -> None:
    """A retrospective search of the composite photo (against a real watchlist in Milvus) lists the
    subject's face first, and it finds the subject's other photo; the blob matches nobody."""
    from lfr.retro.search import retrospective_search
    from lfr.watchlist.store import SubjectMeta, WatchlistStore

    data = stack_settings.model_dump()
    data["redis"]["key_prefix"] = f"lfr-choice-{uuid.uuid4().hex[:8]}:"
    data["milvus"]["collection_prefix"] = f"t{uuid.uuid4().hex[:8]}_"
    data["models"].update(dir=models_dir, detector="mtcnn")
    settings = Settings(**data)
    analyzer = FaceAnalyzer(settings)
    others = sorted(p for p in (faces_dir / PHOTO.parent).glob("*.jpg") if p.name != PHOTO.name)
    store = WatchlistStore(settings, analyzer.embedder.card)
    try:
        wl = "wl-choice"
        for p in others:
            img = read_image(p)
            assert img is not None
            face = analyzer.enrol(img)
            store.upsert_subject(SubjectMeta(subject_id="id11", watchlist_id=wl), face.embedding, p.stem * 8)
        canvas, _, face_top = _composite(photo)
        probe = tmp_path / "composite.png"
        cv2.imwrite(str(probe), canvas)
        result = await retrospective_search(
            settings, probe, "OP-choice", "test of face choice", "pc-1", watchlist_ids=[wl], analyzer=analyzer
        )
    finally:
        store.close()
    assert len(result.faces) == 2
    first, second = result.faces
    assert _in_face_part(first.bbox, face_top) and not _in_face_part(second.bbox, face_top)
    assert first.candidates[0].subject_id == "id11" and first.candidates[0].clears_threshold
    assert not any(c.clears_threshold for c in second.candidates)
