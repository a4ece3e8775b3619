"""A force's own ArcFace-style model (112x112 RGB in [-1, 1], 512-d, COSINE) plugs in with a card, no code."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from lfr.core.config import load_settings
from lfr.vision import FaceAnalyzer, find_card
from lfr.vision.cards import Calibration, ChipTemplate, FileRef, InputSpec, ModelCard, Preprocessing
from lfr.vision.templates import ARCFACE_112


def _arcface_like_model() -> bytes:
    rng = np.random.default_rng(7)
    w1 = rng.normal(0, 0.2, (16, 3, 8, 8)).astype(np.float32)
    w2 = rng.normal(0, 0.02, (16 * 14 * 14, 512)).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["data", "w1"], ["c1"], strides=[8, 8], kernel_shape=[8, 8]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Flatten", ["r1"], ["f1"], axis=1),
        helper.make_node("MatMul", ["f1", "w2"], ["fc1"]),
    ]
    graph = helper.make_graph(
        nodes,
        "arcface_like",
        [helper.make_tensor_value_info("data", TensorProto.FLOAT, ["N", 3, 112, 112])],
        [helper.make_tensor_value_info("fc1", TensorProto.FLOAT, ["N", 512])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")],
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="test")
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m.SerializeToString()


@pytest.fixture(scope="module")
def plugin_models(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("plugin")
    shutil.copytree(models_dir / "mtcnn", d / "mtcnn")
    data = _arcface_like_model()
    (d / "force-arcface").mkdir()
    (d / "force-arcface" / "w600k.onnx").write_bytes(data)
    card = ModelCard(
        name="force-arcface",
        kind="embedder",
        type="onnx-embedder",
        files=(FileRef(path="w600k.onnx", sha256=hashlib.sha256(data).hexdigest()),),
        input=InputSpec(size=(112, 112), channels="RGB", layout="NCHW", name="data"),
        preprocessing=Preprocessing(mean=(127.5, 127.5, 127.5), std=(127.5, 127.5, 127.5)),
        output_name="fc1",
        dim=512,
        templates={"mtcnn5": ChipTemplate(size=112, points=ARCFACE_112, source="insightface arcface_dst")},
        metric="COSINE",
        threshold=0.4,
        threshold_floor=0.3,
        calibration=(Calibration(name="none", dataset="synthetic test model"),),
        licence="test only",
    )
    (d / "force-arcface" / "card.yaml").write_text(card.to_yaml())
    return d


def test_arcface_style_card_runs_through_face_analyzer(plugin_models: Path, faces_dir: Path) -> None:
    settings = load_settings(
        models={"dir": str(plugin_models), "embedder": "force-arcface", "detector": "mtcnn"}
    )
    analyzer = FaceAnalyzer(settings)
    card = find_card(plugin_models, "force-arcface")
    assert analyzer.embedder.chip_size == 112 and analyzer.embedder.card.metric == "COSINE"
    img = cv2.imread(str(faces_dir / "facenet_pytorch_samples/multi_face/multiface.jpg"))
    faces = analyzer.analyse(img)
    assert len(faces) == 6
    for f in faces:
        assert (
            f.chip.shape == (112, 112, 3) and f.embedding.shape == (512,) and f.embedding.dtype == np.float32
        )
    # The embedder applied the card's preprocessing: RGB, (x - 127.5) / 127.5, NCHW.
    chip = faces[0].chip
    x = ((chip[:, :, ::-1].astype(np.float32) - 127.5) / 127.5).transpose(2, 0, 1)[None]
    sess = ort.InferenceSession(str(card.file("model")), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(sess.run(["fc1"], {"data": x})[0][0], faces[0].embedding, rtol=1e-5, atol=1e-5)
    # Cosine scoring: a face against itself scores 1, against another face less.
    e = np.stack([f.embedding for f in faces])
    sims = card.distance(e[0], e)
    assert card.to_score(float(sims[0])) == pytest.approx(1.0)
    assert card.is_match(float(sims[0])) and card.score_threshold == pytest.approx(0.4)
    assert sims[1:].max() < 1.0
