"""Rebuild the three MTCNN networks (P-Net, R-Net, O-Net) as ONNX graphs from the ``mtcnn`` wheel's weights.

Why: the PyPI package ``mtcnn`` (MIT) ships the trained weights as lz4-compressed joblib pickles of Keras
weight lists, but running them needs TensorFlow. The architecture is tiny and fixed (see the package's
``mtcnn/network/{pnet,rnet,onet}.py``), so the weights are re-laid out here into ONNX graphs with
``onnx.helper``: no TensorFlow, no model hub.

Layout decisions (all folded into the graphs so the runtime does no per-pixel Python work):

* input is ``uint8``-valued float32 NHWC **BGR** pixels, exactly what OpenCV produces; the graph transposes
  to NCHW, and the first convolution absorbs both the BGR->RGB swap (its input channels are reversed) and
  MTCNN's ``(x - 127.5) / 128`` normalisation (exact, because the first convolution has no padding);
* Keras ``Conv2D`` kernels ``(kh, kw, in, out)`` become ONNX ``(out, in, kh, kw)``;
* Keras ``MaxPooling2D(padding="same")`` is ONNX ``MaxPool(auto_pad="SAME_UPPER")`` (the extra padding goes
  to the bottom/right, as in TensorFlow);
* R-Net and O-Net permute NHWC to NWHC before flattening; instead of a runtime transpose the dense weight
  rows are re-ordered to consume ONNX's NCHW flatten order directly;
* outputs: P-Net ``prob`` [N,H',W'] (face probability map) and ``reg`` [N,4,H',W']; R-Net ``prob`` [N] and
  ``reg`` [N,4]; O-Net ``prob`` [N], ``reg`` [N,4] and ``landmarks`` [N,10] (x1..x5, y1..y5 relative).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper

from lfr.modelbuild.onnx_graph import GraphBuilder

# The producer recorded in the ONNX file: part of the file's bytes and so of the model id; it keeps the
# module path the converter first shipped under, so a rebuild gives the same id.
PRODUCER = "lfr.vision.convert_mtcnn"
PRODUCER_VERSION = "3"
MEAN = 127.5
SCALE = 1.0 / 128.0


class MtcnnFormatError(ValueError):
    """The weight files do not have the shapes of the MTCNN networks this converter knows."""


def load_keras_weights(path: Path) -> list[np.ndarray]:
    """Load one of the package's ``*.lz4`` weight lists (lz4-compressed joblib) without TensorFlow."""
    # joblib (a build-time extra, imported here so runtime images need not ship it) recognises the lz4 frame
    # itself when the ``lz4`` package is installed.
    import joblib

    weights = joblib.load(Path(path))
    if not isinstance(weights, list) or not all(isinstance(w, np.ndarray) for w in weights):
        raise MtcnnFormatError(f"{path} is not a list of numpy arrays")
    return [np.asarray(w, dtype=np.float32) for w in weights]


class _Graph(GraphBuilder):
    """The MTCNN layers on top of the shared builder."""

    def conv(self, x: str, kernel: np.ndarray, bias: np.ndarray, first: bool = False) -> str:
        w = kernel.astype(np.float64).transpose(3, 2, 0, 1)  # (out, in, kh, kw), input channels RGB
        b = bias.astype(np.float64)
        if first:
            # Input is BGR 0-255: reverse the input channels and fold (x - 127.5) / 128 into the filter.
            w = w[:, ::-1] * SCALE
            b = b - w.sum(axis=(1, 2, 3)) * MEAN
        return self.node(
            "Conv",
            [x, self.const("W", w.astype(np.float32)), self.const("B", b.astype(np.float32))],
            "conv",
            kernel_shape=list(kernel.shape[:2]),
        )

    def prelu(self, x: str, alpha: np.ndarray, spatial: bool = True) -> str:
        """PReLU written as ``a*x + (1-a)*Relu(x)`` (identical for every slope, including a < 0 or a > 1).

        Why not ONNX ``PRelu``: onnxruntime's CPU kernel broadcasts the per-channel slope element by element
        and cannot run in its blocked (NCHWc) layout, so on R-Net it cost more than all convolutions
        together (17.7 of 48.9 ms for 324 candidates, plus a layout reorder). The rewritten form is a Relu
        and two per-channel scalings that the optimiser turns into blocked 1x1 depthwise convolutions:
        P-Net 24.7 -> 15.9 ms on a 576x324 level, R-Net 46.0 -> 25.7 ms, O-Net 10.0 -> 6.0 ms, outputs equal
        to 1e-6 (one thread; docs/models.md).
        """
        a = alpha.reshape(-1).astype(np.float64)
        shape = (-1, 1, 1) if spatial else (-1,)
        relu = self.node("Relu", [x], "relu")
        kept = self.node("Mul", [relu, self.const("oma", (1.0 - a).astype(np.float32).reshape(shape))], "mul")
        leak = self.node("Mul", [x, self.const("alpha", a.astype(np.float32).reshape(shape))], "mul")
        return self.node("Add", [kept, leak], "prelu")

    def maxpool(self, x: str, k: int, s: int, same: bool) -> str:
        attrs: dict[str, Any] = {"kernel_shape": [k, k], "strides": [s, s]}
        if same:
            attrs["auto_pad"] = "SAME_UPPER"
        return self.node("MaxPool", [x], "pool", **attrs)

    def dense(self, x: str, w: np.ndarray, b: np.ndarray, out: str | None = None) -> str:
        return self.node("Gemm", [x, self.const("fcW", w), self.const("fcB", b)], "fc", out=out)

    def input_nchw(self, size: int | None) -> tuple[onnx.ValueInfoProto, str]:
        dims: list[int | str] = ["N", size or "H", size or "W", 3]
        vi = helper.make_tensor_value_info("input", TensorProto.FLOAT, dims)
        return vi, self.node("Transpose", ["input"], "nchw", perm=[0, 3, 1, 2])


def _reorder_dense_rows(w: np.ndarray, h: int, wd: int, c: int) -> np.ndarray:
    """Keras flattens NWHC (after its Permute); ONNX flattens NCHW. Return rows in ONNX order."""
    cc, hh, ww = np.meshgrid(np.arange(c), np.arange(h), np.arange(wd), indexing="ij")
    keras_index = (ww * h + hh) * c + cc  # position of (c, h, w) in the Keras flatten
    return np.ascontiguousarray(w[keras_index.reshape(-1)])


def _check(weights: list[np.ndarray], shapes: list[tuple[int, ...]], name: str) -> None:
    got = [tuple(w.shape) for w in weights]
    if got != shapes:
        raise MtcnnFormatError(f"{name} weights have shapes {got}, expected {shapes}")


def pnet_to_onnx(w: list[np.ndarray]) -> onnx.ModelProto:
    _check(
        w,
        [(3, 3, 3, 10), (10,), (1, 1, 10), (3, 3, 10, 16), (16,), (1, 1, 16), (3, 3, 16, 32), (32,),
         (1, 1, 32), (1, 1, 32, 4), (4,), (1, 1, 32, 2), (2,)],
        "pnet",
    )  # fmt: skip
    g = _Graph("mtcnn_pnet")
    vi, x = g.input_nchw(None)
    x = g.prelu(g.conv(x, w[0], w[1], first=True), w[2])
    x = g.maxpool(x, 2, 2, same=True)
    x = g.prelu(g.conv(x, w[3], w[4]), w[5])
    x = g.prelu(g.conv(x, w[6], w[7]), w[8])
    g.conv(x, w[9], w[10])
    g.nodes[-1].output[0] = "reg"
    logits = g.conv(x, w[11], w[12])
    # Face probability of a 2-way softmax = sigmoid(l1 - l0): one channel instead of two.
    diff = g.node("Conv", [logits, g.const("sel", np.array([[[[-1.0]], [[1.0]]]], np.float32))], "diff")
    sq = g.node("Sigmoid", [diff], "sig")
    g.node("Squeeze", [sq, g.const("axis", np.array([1], np.int64))], "prob", out="prob")
    outs = [
        helper.make_tensor_value_info("prob", TensorProto.FLOAT, ["N", "Ho", "Wo"]),
        helper.make_tensor_value_info("reg", TensorProto.FLOAT, ["N", 4, "Ho", "Wo"]),
    ]
    return g.model([vi], outs, PRODUCER, PRODUCER_VERSION)


def _head(g: _Graph, x: str, w: np.ndarray, b: np.ndarray, out: str) -> None:
    g.dense(x, w, b, out=out)


def _prob_head(g: _Graph, x: str, w: np.ndarray, b: np.ndarray) -> None:
    # softmax(.)[1] == sigmoid(l1 - l0): fold the difference into one dense column.
    wd = (w[:, 1] - w[:, 0]).reshape(-1, 1)
    bd = np.array([b[1] - b[0]], np.float32)
    logit = g.dense(x, wd.astype(np.float32), bd)
    sig = g.node("Sigmoid", [logit], "sig")
    g.node("Squeeze", [sig, g.const("axis", np.array([1], np.int64))], "prob", out="prob")


def rnet_to_onnx(w: list[np.ndarray]) -> onnx.ModelProto:
    _check(
        w,
        [(3, 3, 3, 28), (28,), (1, 1, 28), (3, 3, 28, 48), (48,), (1, 1, 48), (2, 2, 48, 64), (64,),
         (1, 1, 64), (576, 128), (128,), (128,), (128, 4), (4,), (128, 2), (2,)],
        "rnet",
    )  # fmt: skip
    g = _Graph("mtcnn_rnet")
    vi, x = g.input_nchw(24)
    x = g.prelu(g.conv(x, w[0], w[1], first=True), w[2])  # 22
    x = g.maxpool(x, 3, 2, same=True)  # 11
    x = g.prelu(g.conv(x, w[3], w[4]), w[5])  # 9
    x = g.maxpool(x, 3, 2, same=False)  # 4
    x = g.prelu(g.conv(x, w[6], w[7]), w[8])  # 3
    x = g.node("Flatten", [x], "flat", axis=1)
    x = g.prelu(g.dense(x, _reorder_dense_rows(w[9], 3, 3, 64), w[10]), w[11], spatial=False)
    _head(g, x, w[12], w[13], "reg")
    _prob_head(g, x, w[14], w[15])
    outs = [
        helper.make_tensor_value_info("prob", TensorProto.FLOAT, ["N"]),
        helper.make_tensor_value_info("reg", TensorProto.FLOAT, ["N", 4]),
    ]
    return g.model([vi], outs, PRODUCER, PRODUCER_VERSION)


def onet_to_onnx(w: list[np.ndarray]) -> onnx.ModelProto:
    _check(
        w,
        [(3, 3, 3, 32), (32,), (1, 1, 32), (3, 3, 32, 64), (64,), (1, 1, 64), (3, 3, 64, 64), (64,),
         (1, 1, 64), (2, 2, 64, 128), (128,), (1, 1, 128), (1152, 256), (256,), (256,), (256, 4), (4,),
         (256, 10), (10,), (256, 2), (2,)],
        "onet",
    )  # fmt: skip
    g = _Graph("mtcnn_onet")
    vi, x = g.input_nchw(48)
    x = g.prelu(g.conv(x, w[0], w[1], first=True), w[2])  # 46
    x = g.maxpool(x, 3, 2, same=True)  # 23
    x = g.prelu(g.conv(x, w[3], w[4]), w[5])  # 21
    x = g.maxpool(x, 3, 2, same=False)  # 10
    x = g.prelu(g.conv(x, w[6], w[7]), w[8])  # 8
    x = g.maxpool(x, 2, 2, same=True)  # 4
    x = g.prelu(g.conv(x, w[9], w[10]), w[11])  # 3
    x = g.node("Flatten", [x], "flat", axis=1)
    x = g.prelu(g.dense(x, _reorder_dense_rows(w[12], 3, 3, 128), w[13]), w[14], spatial=False)
    _head(g, x, w[15], w[16], "reg")
    _head(g, x, w[17], w[18], "landmarks")
    _prob_head(g, x, w[19], w[20])
    outs = [
        helper.make_tensor_value_info("prob", TensorProto.FLOAT, ["N"]),
        helper.make_tensor_value_info("reg", TensorProto.FLOAT, ["N", 4]),
        helper.make_tensor_value_info("landmarks", TensorProto.FLOAT, ["N", 10]),
    ]
    return g.model([vi], outs, PRODUCER, PRODUCER_VERSION)


def convert_mtcnn(weights_dir: Path) -> dict[str, onnx.ModelProto]:
    """Convert ``pnet.lz4``, ``rnet.lz4`` and ``onet.lz4`` from ``weights_dir`` into three ONNX models."""
    d = Path(weights_dir)
    return {
        "pnet": pnet_to_onnx(load_keras_weights(d / "pnet.lz4")),
        "rnet": rnet_to_onnx(load_keras_weights(d / "rnet.lz4")),
        "onet": onet_to_onnx(load_keras_weights(d / "onet.lz4")),
    }
