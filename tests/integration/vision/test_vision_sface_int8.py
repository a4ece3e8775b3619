"""Opt-in int8 SFace (``lfr models quantize --from sface --float-ends``): float ends, a video as a calibration
source, and embeddings held to a cosine floor against the float SFace on real chips."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest

from lfr.core.config import Settings, load_settings
from lfr.core.images import list_images
from lfr.modelbuild.quantize import calibration_images, float_end_nodes, quantize_embedder
from lfr.vision import FaceAnalyzer
from lfr.vision.cards import find_card

# Opt-in tooling whose module fixture quantizes SFace (about 30 s): run by make test-long and CI.
pytestmark = pytest.mark.long

BASE = "sface"
INT8 = "sface-int8"


def _calibration(faces_dir: Path) -> list[Path]:
    # Photos and a clip that no evaluation set contains; the clip gives the small, soft faces of footage.
    demo = faces_dir / "face_recognition_demo"
    return [
        demo,
        faces_dir / "facenet_pytorch_samples" / "test_images",
        demo / "video" / "short_hamilton_clip.mp4",
    ]


@pytest.fixture(scope="module")
def int8_settings(models_dir: Path, faces_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    d = tmp_path_factory.mktemp("sface-int8") / "models"
    shutil.copytree(models_dir, d)
    settings = load_settings(models={"dir": str(d), "embedder": BASE})
    quantize_embedder(settings, BASE, INT8, _calibration(faces_dir), max_chips=128, float_ends=True)
    return settings


def test_a_folder_means_its_photos_and_a_named_video_its_frames(faces_dir: Path) -> None:
    files = calibration_images(_calibration(faces_dir))
    videos = [p for p in files if p.suffix == ".mp4"]
    assert [p.name for p in videos] == ["short_hamilton_clip.mp4"]  # named; the folder alone adds no video
    assert len(files) > len(videos) and all(p == p.resolve() for p in files) and files == sorted(files)


def test_first_and_last_layers_stay_float(int8_settings: Settings) -> None:
    base = find_card(int8_settings.models_dir, BASE)
    card = find_card(int8_settings.models_dir, INT8)
    card.verify_files()
    assert card.model_id != base.model_id and (card.metric, card.threshold) == (base.metric, base.threshold)
    assert "first and last layer float" in (card.description or "")
    ends = float_end_nodes(base.file("model"))
    assert ends == ["conv_1_conv2d", "pre_fc1"]
    graph = onnx.load(str(card.file("model"))).graph
    floats = {t.name for t in graph.initializer if t.data_type == onnx.TensorProto.FLOAT}
    by_name = {n.name: n for n in graph.node}
    for name in ends:  # weights read straight from a float initialiser, not through DequantizeLinear
        assert by_name[name].input[1] in floats, name
    quantised = [n for n in graph.node if n.op_type == "Conv" and n.input[1] not in floats]
    assert len(quantised) == 26  # every other convolution is int8


def test_embeddings_keep_a_cosine_floor_against_float_sface(int8_settings: Settings, faces_dir: Path) -> None:
    float_an = FaceAnalyzer(int8_settings)
    int8_an = FaceAnalyzer(
        int8_settings.model_copy(
            update={"models": int8_settings.models.model_copy(update={"embedder": INT8})}
        )
    )
    chips = []  # every face in the deepface photos: none is a calibration photo
    for path in list_images(faces_dir / "deepface_testset"):
        image = cv2.imread(str(path))
        assert image is not None, path
        chips += [f.chip for f in float_an.analyse(image)]
    assert len(chips) >= 10
    a, b = float_an.embedder.embed(chips), int8_an.embedder.embed(chips)
    cos = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    # Measured on the 1,493 LFW dev chips with the documented calibration: min 0.88, median 0.97.
    assert float(np.median(cos)) >= 0.94 and float(cos.min()) >= 0.8, np.round(cos, 3)
