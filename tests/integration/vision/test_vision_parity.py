"""The ONNX rebuild of dlib's ResNet must reproduce dlib itself (dlib-bin is a dev-only reference)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from lfr.core.config import Settings
from lfr.modelbuild.build import package_file
from lfr.vision import templates
from lfr.vision.align import align
from lfr.vision.cards import ChipTemplate
from lfr.vision.pipeline import load_detector, load_embedder

dlib = pytest.importorskip("dlib", reason="dlib-bin (dev extra) is needed as the parity reference")


@pytest.fixture(scope="module")
def dlib_faces(faces_dir: Path) -> list[tuple[np.ndarray, object]]:
    """(RGB image, dlib 5-point shape) for every face dlib finds in the calibration photos."""
    hog = dlib.get_frontal_face_detector()
    sp = dlib.shape_predictor(
        str(package_file("face_recognition_models", "models/shape_predictor_5_face_landmarks.dat"))
    )
    out = []
    folders = ["face_recognition_demo/known_people/obama", "face_recognition_demo/knn_examples/train"]
    for folder in folders:
        for f in sorted((faces_dir / folder).rglob("*.jp*g")):
            rgb = cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB)
            for rect in hog(rgb, 1):
                out.append((rgb, sp(rgb, rect)))
    assert len(out) >= 10
    return out


@pytest.fixture(scope="module")
def dlib_model() -> object:
    return dlib.face_recognition_model_v1(
        str(package_file("face_recognition_models", "models/dlib_face_recognition_resnet_model_v1.dat"))
    )


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_onnx_matches_dlib_on_identical_chips(
    settings: Settings, dlib_faces: list, dlib_model: object
) -> None:
    emb = load_embedder(settings)
    chips = [dlib.get_face_chip(rgb, shape, 150, 0.25) for rgb, shape in dlib_faces]
    ref = np.asarray([dlib_model.compute_face_descriptor(c) for c in chips])  # type: ignore[attr-defined]
    ours = emb.embed([np.ascontiguousarray(c[:, :, ::-1]) for c in chips])
    cos = _cos(ref, ours)
    assert len(chips) >= 10
    assert cos.min() >= 0.9999, cos.min()
    assert np.abs(ref - ours).max() < 1e-4


def test_dlib5_template_reproduces_dlib_chips(
    settings: Settings, dlib_faces: list, dlib_model: object
) -> None:
    """Our aligner with the card's dlib5 template gives the embedding dlib computes from the full image."""
    emb = load_embedder(settings)
    tpl = emb.card.templates["dlib5"]
    dists = []
    for rgb, shape in dlib_faces:
        ref = np.asarray(dlib_model.compute_face_descriptor(rgb, shape))  # type: ignore[attr-defined]
        pts = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)
        chip = align(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), pts, tpl)
        dists.append(float(np.linalg.norm(emb.embed([chip])[0] - ref)))
    # Remaining difference: dlib's pyramid vs cv2.pyrDown when shrinking large faces (both 5-tap Gaussian).
    assert np.median(dists) < 0.05, dists
    assert max(dists) < 0.12, dists


def test_mtcnn_template_approximates_dlib_chips(
    settings: Settings, dlib_faces: list, dlib_model: object
) -> None:
    """MTCNN landmarks + the calibrated mtcnn5 template land close to dlib's own pipeline."""
    det = load_detector(settings)
    emb = load_embedder(settings)
    dists = []
    for rgb, shape in dlib_faces:
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        ref = np.asarray(dlib_model.compute_face_descriptor(rgb, shape))  # type: ignore[attr-defined]
        cx, cy = shape.rect.center().x, shape.rect.center().y
        hits = [
            d
            for d in det.detect(bgr)
            if d.bbox[0] <= cx <= d.bbox[0] + d.bbox[2] and d.bbox[1] <= cy <= d.bbox[1] + d.bbox[3]
        ]
        assert hits, "MTCNN missed a face dlib found"
        chip = emb.align(bgr, hits[0].landmarks, "mtcnn5")
        dists.append(float(np.linalg.norm(emb.embed([chip])[0] - ref)))
    # Same person, same photo: far inside the 0.6 match threshold (landmark noise only).
    assert np.mean(dists) < 0.25, dists
    assert max(dists) < 0.45, dists
    # A deliberately wrong template (dlib's eye-corner template used for MTCNN points) is measurably worse.
    wrong = ChipTemplate(size=150, padding=0.25, points=templates.dlib5_template())
    bad = []
    for rgb, shape in dlib_faces[:5]:
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        ref = np.asarray(dlib_model.compute_face_descriptor(rgb, shape))  # type: ignore[attr-defined]
        d = max(det.detect(bgr), key=lambda x: x.bbox[2])
        bad.append(float(np.linalg.norm(emb.embed([align(bgr, d.landmarks, wrong)])[0] - ref)))
    assert np.mean(bad) > np.mean(dists[:5])
