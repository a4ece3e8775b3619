"""Repairs for third-party ONNX graphs with block-quantised weights (the OpenCV Zoo SFace and YuNet files).

Why repair rather than use them as shipped: the SFace file declares its weights as graph inputs with no
values (onnxruntime builds a session, then ``run()`` fails), both files store weights as int8 blocks that
are dequantised on every call, and both fix the batch or image size. Each repair here is a pure function of
the graph, applied in a fixed order, so the converted file is the same bytes on every build:

* :func:`drop_valueless_inputs` removes declared inputs that are also initialisers or feed nothing;
* :func:`fold_constants` evaluates ``DequantizeLinear`` (blocked, opset 21) and the ``Reshape`` of a
  constant in numpy and stores the fp32 result as an initialiser; the arithmetic is ONNX's own definition
  ``(q - zero_point) * scale`` with the scale and zero point repeated ``block_size`` times along ``axis``;
* :func:`fold_batchnorm` merges an inference-mode ``BatchNormalization`` into the ``Conv`` or ``Gemm``
  that feeds it (exact up to float rounding);
* :func:`rewrite_prelu` writes ``PRelu(x, a)`` as ``a*x + (1-a)*Relu(x)``: onnxruntime's CPU PRelu kernel
  is not fused with the convolution and is several times slower than Relu + Mul + Add;
* :func:`drop_dropout` removes inference no-op ``Dropout`` nodes;
* :func:`set_dim` makes an input or output dimension symbolic (a dynamic batch or image size).
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
from onnx import helper, numpy_helper


class GraphRepairError(ValueError):
    """The graph does not have the structure a repair expects (the source file changed)."""


def _inits(g: onnx.GraphProto) -> dict[str, onnx.TensorProto]:
    return {i.name: i for i in g.initializer}


def _consumers(g: onnx.GraphProto) -> Counter[str]:
    used: Counter[str] = Counter()
    for nd in g.node:
        used.update(x for x in nd.input if x)
    used.update(o.name for o in g.output)
    return used


def _set_init(g: onnx.GraphProto, name: str, value: np.ndarray) -> None:
    for i, t in enumerate(g.initializer):
        if t.name == name:
            g.initializer[i].CopyFrom(numpy_helper.from_array(np.ascontiguousarray(value), name))
            return
    g.initializer.append(numpy_helper.from_array(np.ascontiguousarray(value), name))


def drop_unused_initializers(g: onnx.GraphProto) -> None:
    used = _consumers(g)
    keep = [t for t in g.initializer if used[t.name]]
    del g.initializer[:]
    g.initializer.extend(keep)


def drop_valueless_inputs(g: onnx.GraphProto) -> int:
    """Remove declared graph inputs that are initialisers or that no node reads; return how many."""
    inits = _inits(g)
    used = _consumers(g)
    keep = [i for i in g.input if i.name not in inits and used[i.name]]
    dropped = len(g.input) - len(keep)
    del g.input[:]
    g.input.extend(keep)
    return dropped


def dequantize_blocked(
    q: np.ndarray, scale: np.ndarray, zero: np.ndarray | None, axis: int, block: int
) -> np.ndarray:
    """ONNX DequantizeLinear (opset 21) for per-tensor, per-axis and blocked scales, in float32."""
    qf = q.astype(np.float32)
    scale = np.asarray(scale, dtype=np.float32)
    z = np.zeros_like(scale) if zero is None else np.asarray(zero).astype(np.float32)
    if scale.size == 1:
        return (qf - z.reshape(())) * scale.reshape(())
    axis = axis % q.ndim
    if scale.ndim == 1 and block == 0:  # per-axis
        shape = [1] * q.ndim
        shape[axis] = -1
        return (qf - z.reshape(shape)) * scale.reshape(shape)
    if block <= 0:
        raise GraphRepairError("blocked DequantizeLinear without block_size")
    n = q.shape[axis]
    s = np.repeat(scale, block, axis=axis).take(range(n), axis=axis)
    zz = np.repeat(z, block, axis=axis).take(range(n), axis=axis)
    return (qf - zz) * s


def _attr(node: onnx.NodeProto, name: str, default: int | float) -> int | float:
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def fold_constants(g: onnx.GraphProto) -> int:
    """Replace DequantizeLinear / Reshape / Constant nodes whose inputs are all constant by initialisers."""
    folded = 0
    changed = True
    while changed:
        changed = False
        inits = _inits(g)
        values = {n: numpy_helper.to_array(t) for n, t in inits.items()}
        keep: list[onnx.NodeProto] = []
        for nd in g.node:
            ins = [x for x in nd.input if x]
            if nd.op_type == "Constant" and not ins:
                value = helper.get_attribute_value(next(a for a in nd.attribute if a.name == "value"))
                _set_init(g, nd.output[0], numpy_helper.to_array(value))
            elif nd.op_type == "DequantizeLinear" and all(x in values for x in ins):
                zero = values[nd.input[2]] if len(nd.input) > 2 and nd.input[2] else None
                out = dequantize_blocked(
                    values[nd.input[0]],
                    values[nd.input[1]],
                    zero,
                    int(_attr(nd, "axis", 1)),
                    int(_attr(nd, "block_size", 0)),
                )
                _set_init(g, nd.output[0], out)
            elif nd.op_type == "Reshape" and all(x in values for x in ins):
                _set_init(g, nd.output[0], values[nd.input[0]].reshape(values[nd.input[1]].astype(np.int64)))
            else:
                keep.append(nd)
                continue
            folded += 1
            changed = True
        del g.node[:]
        g.node.extend(keep)
    drop_unused_initializers(g)
    return folded


def _single_consumer(g: onnx.GraphProto, name: str) -> onnx.NodeProto | None:
    users = [nd for nd in g.node if name in nd.input]
    graph_out = any(o.name == name for o in g.output)
    return users[0] if len(users) == 1 and not graph_out else None


def fold_batchnorm(g: onnx.GraphProto) -> int:
    """Merge ``Conv -> BatchNormalization`` and ``Gemm -> BatchNormalization`` pairs; return how many."""
    inits = _inits(g)
    producer = {o: nd for nd in g.node for o in nd.output}
    removed: set[int] = set()
    count = 0
    for bn in list(g.node):
        if bn.op_type != "BatchNormalization":
            continue
        found = producer.get(bn.input[0])
        if found is None or found.op_type not in ("Conv", "Gemm"):
            continue
        prev: onnx.NodeProto = found
        consumer = _single_consumer(g, prev.output[0])
        if consumer is None or id(consumer) != id(bn):
            continue
        if not all(x in inits for x in bn.input[1:5]):
            continue
        gamma, beta, mean, var = (numpy_helper.to_array(inits[x]).astype(np.float64) for x in bn.input[1:5])
        eps = float(_attr(bn, "epsilon", 1e-5))
        k = gamma / np.sqrt(var + eps)
        w_name = prev.input[1]
        w = numpy_helper.to_array(inits[w_name]).astype(np.float64)
        has_bias = len(prev.input) > 2 and prev.input[2]
        b = numpy_helper.to_array(inits[prev.input[2]]).astype(np.float64) if has_bias else np.zeros(len(k))
        if prev.op_type == "Conv":
            w = w * k.reshape(-1, *([1] * (w.ndim - 1)))
        else:
            if float(_attr(prev, "alpha", 1.0)) != 1.0 or float(_attr(prev, "beta", 1.0)) != 1.0:
                raise GraphRepairError(f"Gemm {prev.name} with alpha/beta other than 1 is not supported")
            w = w * (k.reshape(-1, 1) if int(_attr(prev, "transB", 0)) else k.reshape(1, -1))
        b = (b - mean) * k + beta
        new_w = f"{w_name}_bnfold"
        new_b = f"{prev.output[0]}_bias_bnfold"
        _set_init(g, new_w, w.astype(np.float32))
        _set_init(g, new_b, b.astype(np.float32))
        inits = _inits(g)
        data_in = prev.input[0]
        del prev.input[:]
        prev.input.extend([data_in, new_w, new_b])
        prev.output[0] = bn.output[0]
        removed.add(id(bn))
        count += 1
    keep = [nd for nd in g.node if id(nd) not in removed]
    del g.node[:]
    g.node.extend(keep)
    drop_unused_initializers(g)
    return count


def rewrite_prelu(g: onnx.GraphProto) -> int:
    """``PRelu(x, a)`` -> ``Add(Mul(x, a), Mul(Relu(x), 1 - a))`` with the slopes folded into constants."""
    inits = _inits(g)
    out: list[onnx.NodeProto] = []
    count = 0
    for nd in g.node:
        if nd.op_type != "PRelu" or nd.input[1] not in inits:
            out.append(nd)
            continue
        a = numpy_helper.to_array(inits[nd.input[1]]).astype(np.float32)
        x, y, base = nd.input[0], nd.output[0], nd.output[0]
        _set_init(g, f"{base}_slope", a)
        _set_init(g, f"{base}_one_minus_slope", (1.0 - a).astype(np.float32))
        out += [
            helper.make_node("Relu", [x], [f"{base}_relu"], name=f"{base}_relu"),
            helper.make_node(
                "Mul", [f"{base}_relu", f"{base}_one_minus_slope"], [f"{base}_pos"], name=f"{base}_pos"
            ),
            helper.make_node("Mul", [x, f"{base}_slope"], [f"{base}_lin"], name=f"{base}_lin"),
            helper.make_node("Add", [f"{base}_lin", f"{base}_pos"], [y], name=f"{base}_add"),
        ]
        count += 1
    del g.node[:]
    g.node.extend(out)
    drop_unused_initializers(g)
    return count


def drop_dropout(g: onnx.GraphProto) -> int:
    """Remove Dropout nodes (identity at inference), rewiring their consumers to the Dropout's input."""
    rename: dict[str, str] = {}
    keep: list[onnx.NodeProto] = []
    for nd in g.node:
        if nd.op_type == "Dropout":
            rename[nd.output[0]] = nd.input[0]
            continue
        keep.append(nd)
    for nd in keep:
        for i, x in enumerate(nd.input):
            if x in rename:
                nd.input[i] = rename[x]
    for o in g.output:
        if o.name in rename:
            raise GraphRepairError("a graph output comes straight from Dropout")
    del g.node[:]
    g.node.extend(keep)
    drop_unused_initializers(g)
    return len(rename)


def set_dim(value_info: onnx.ValueInfoProto, index: int, name: str) -> None:
    dim = value_info.type.tensor_type.shape.dim[index]
    dim.Clear()
    dim.dim_param = name


def finish(model: onnx.ModelProto, producer: str, producer_version: str, opset: int = 17) -> onnx.ModelProto:
    """Fixed opset, IR version and producer; no value_info (shapes are inferred at load); checked."""
    from lfr.modelbuild.onnx_graph import checked_model

    del model.graph.value_info[:]
    return checked_model(model.graph, producer, producer_version, opset)
