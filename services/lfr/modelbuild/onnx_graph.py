"""A small ONNX graph builder shared by the model converters (dlib ResNet, MTCNN).

Why one builder: both converters re-lay trained weights into a fixed graph with ``onnx.helper``, and their
output must be byte-identical from build to build (model ids are sha256 digests). Names therefore come
from one deterministic counter, initialisers are stored in creation order, and the model carries a fixed
opset, IR version and producer, with no timestamps.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

OPSET = 17
IR_VERSION = 8


class GraphBuilder:
    def __init__(self, name: str) -> None:
        self.name = name
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._n = 0

    def fresh(self, prefix: str) -> str:
        """A name unique in this graph: ``prefix`` plus the next counter value."""
        self._n += 1
        return f"{prefix}_{self._n}"

    def const(self, prefix: str, value: np.ndarray) -> str:
        """Add ``value`` as an initialiser and return its name."""
        n = self.fresh(prefix)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(value), n))
        return n

    def node(self, op: str, inputs: list[str], prefix: str, out: str | None = None, **attrs: Any) -> str:
        """Append one node; its output is ``out`` or a fresh name, which also names the node."""
        name = out or self.fresh(prefix)
        self.nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name

    def model(
        self,
        inputs: list[onnx.ValueInfoProto],
        outputs: list[onnx.ValueInfoProto],
        producer: str,
        producer_version: str,
    ) -> onnx.ModelProto:
        """The checked model (raises onnx.checker.ValidationError on a malformed graph)."""
        graph = helper.make_graph(self.nodes, self.name, inputs, outputs, self.inits)
        return checked_model(graph, producer, producer_version)


def checked_model(
    graph: onnx.GraphProto, producer: str, producer_version: str, opset: int = OPSET
) -> onnx.ModelProto:
    """``graph`` as a model with a fixed opset, IR version and producer (no timestamps), checked."""
    m = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", opset)],
        producer_name=producer,
        producer_version=producer_version,
    )
    m.ir_version = IR_VERSION
    onnx.checker.check_model(m)
    return m
