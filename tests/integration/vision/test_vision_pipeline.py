"""FaceAnalyzer end to end: analyse, enrol and its refusals, tight crops."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from lfr.core.config import Settings, load_settings
from lfr.vision import (
    EnrolmentError,
    FaceAnalyzer,
    MultipleFacesError,
    NoFaceError,
    PoorQualityError,
)

pytestmark = pytest.mark.shared_data


def test_analyse_returns_faces_largest_first(analyzer: FaceAnalyzer, faces_dir: Path) -> None:
    img = cv2.imread(str(faces_dir / "face_recognition_demo/multi_face/two_people.jpg"))
    faces = analyzer.analyse(img)
    assert len(faces) == 2
    assert faces[0].bbox[2] >= faces[1].bbox[2]
    for f in faces:
        assert f.chip.shape == (150, 150, 3) and f.chip.dtype == np.uint8
        assert f.embedding.shape == (128,) and f.quality.passed and not f.fell_back
    # Obama and Biden: different people, well beyond the threshold.
    assert float(np.linalg.norm(faces[0].embedding - faces[1].embedding)) > 0.6


def test_enrol_accepts_one_good_face_and_matches_the_same_person(
    analyzer: FaceAnalyzer, faces_dir: Path
) -> None:
    obama = sorted((faces_dir / "face_recognition_demo/known_people/obama").glob("*.jp*g"))
    a = analyzer.enrol(cv2.imread(str(obama[0])))
    b = analyzer.enrol(cv2.imread(str(obama[1])))
    assert float(np.linalg.norm(a.embedding - b.embedding)) < 0.6
    assert 0 < a.quality.score <= 1


def test_enrol_refusals(analyzer: FaceAnalyzer, faces_dir: Path, models_dir: Path) -> None:
    with pytest.raises(NoFaceError, match="no face"):
        analyzer.enrol(np.full((480, 640, 3), 90, np.uint8))
    group = cv2.imread(str(faces_dir / "facenet_pytorch_samples/multi_face/multiface.jpg"))
    with pytest.raises(MultipleFacesError, match="6 faces"):
        analyzer.enrol(group)
    strict = FaceAnalyzer(
        load_settings(models={"dir": str(models_dir)}, quality={"min_sharpness": 1e9}),
        detector=analyzer.detector,
        embedder=analyzer.embedder,
    )
    one = cv2.imread(str(faces_dir / "face_recognition_demo/known_people/biden/biden.jpg"))
    with pytest.raises(PoorQualityError, match="blurred") as err:
        strict.enrol(one)
    assert isinstance(err.value, EnrolmentError) and not err.value.quality.passed


def test_tight_crops_are_padded_or_fall_back(
    analyzer: FaceAnalyzer, shared_faces: Path, settings: Settings
) -> None:

    lfw = shared_faces / "lfw_pairs_dev/images/Arnold_Palmer"
    img = cv2.imread(str(next(iter(sorted(lfw.glob("*.jpg"))))))
    padded = analyzer.analyse(img, pad_tight=True)
    assert padded and not padded[0].fell_back
    x, y, w, h = padded[0].bbox
    assert 0 <= x + w / 2 <= img.shape[1] and 0 <= y + h / 2 <= img.shape[0]
    blank = analyzer.analyse(np.full((350, 350, 3), 100, np.uint8), pad_tight=True)
    assert len(blank) == 1 and blank[0].fell_back and blank[0].embedding.shape == (128,)
    assert analyzer.analyse(np.full((350, 350, 3), 100, np.uint8)) == []
