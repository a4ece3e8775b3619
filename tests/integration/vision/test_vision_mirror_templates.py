"""Enrolment templates with the default models: the chip's embedding combined with its mirror image's
(``models.mirror_templates``), while probes stay one embedding; runs on the test faces every clone has."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from lfr.core.config import load_settings
from lfr.vision import FaceAnalyzer
from lfr.vision.mirror import combine_mirrored, mirrored
from lfr.vision.photo_embedding import PhotoEmbedder

OBAMA = "face_recognition_demo/knn_examples/train/obama"


def _analyzer(models_dir: Path, **models: object) -> FaceAnalyzer:
    return FaceAnalyzer(load_settings(models={"dir": str(models_dir), **models}))


@pytest.fixture(scope="module")
def default(models_dir: Path) -> FaceAnalyzer:
    return _analyzer(models_dir)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def test_enrolment_template_combines_the_chip_and_its_mirror(default: FaceAnalyzer, faces_dir: Path) -> None:
    image = cv2.imread(str(faces_dir / OBAMA / "obama.jpg"))
    probe = default.analyse(image)[0]
    template = default.enrol(image)
    assert np.array_equal(template.chip, probe.chip)
    plain, mirror = default.embedder.embed([probe.chip]), default.embedder.embed([mirrored(probe.chip)])
    expected = combine_mirrored(plain, mirror, default.embedder.card.metric)[0]
    assert template.embedding == pytest.approx(expected, abs=1e-5)
    # Not the probe's vector, but the same person's: far closer than the card threshold demands.
    cos = float(_unit(template.embedding) @ _unit(probe.embedding))
    assert cos < 0.9999 and cos > 0.9


def test_switched_off_or_with_every_chip_mirrored_the_template_is_the_plain_embedding(
    default: FaceAnalyzer, models_dir: Path, faces_dir: Path
) -> None:
    image = cv2.imread(str(faces_dir / OBAMA / "obama.jpg"))
    off = FaceAnalyzer(
        load_settings(models={"dir": str(models_dir), "mirror_templates": False}),
        detector=default.detector,
        embedder=default.embedder,
    )
    assert np.array_equal(off.enrol(image).embedding, off.analyse(image)[0].embedding)
    both = _analyzer(models_dir, embed_flip=True)
    assert np.array_equal(both.enrol(image).embedding, both.analyse(image)[0].embedding)


def test_photo_embedder_in_template_mode_embeds_as_enrolment_does(
    default: FaceAnalyzer, faces_dir: Path
) -> None:
    path = faces_dir / OBAMA / "obama2.jpg"
    as_template = PhotoEmbedder(default, template=True).embed_path(path)
    as_probe = PhotoEmbedder(default).embed_path(path)
    assert as_template.vector is not None and as_probe.vector is not None
    assert as_template.vector == pytest.approx(default.enrol(cv2.imread(str(path))).embedding, abs=1e-5)
    assert as_probe.vector == pytest.approx(default.analyse(cv2.imread(str(path)))[0].embedding, abs=1e-5)
    assert as_template.quality_passed == as_probe.quality_passed
