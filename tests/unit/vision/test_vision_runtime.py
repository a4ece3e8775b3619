"""Execution settings reach onnxruntime: CPU by default, CUDA first only when asked for and present."""

from __future__ import annotations

import logging

import onnx
import pytest
from onnx import TensorProto, helper

from lfr.core.config import ModelSettings
from lfr.vision import runtime


def _identity_model() -> bytes:
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph([helper.make_node("Identity", ["input"], ["output"])], "id", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return bytes(model.SerializeToString())


def test_cpu_is_the_default() -> None:
    assert runtime.providers_for(ModelSettings()) == ["CPUExecutionProvider"]


def test_cuda_asked_for_and_present_comes_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        runtime.ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"]
    )
    providers = runtime.providers_for(ModelSettings(execution_provider="cuda"))
    assert providers == ["CUDAExecutionProvider", "CPUExecutionProvider"]


def test_cuda_asked_for_but_absent_falls_back_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(runtime.ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    with caplog.at_level(logging.WARNING, logger=runtime.log.name):
        providers = runtime.providers_for(ModelSettings(execution_provider="cuda"))
    assert providers == ["CPUExecutionProvider"]
    assert "CUDAExecutionProvider" in caplog.text


def test_session_takes_the_thread_settings() -> None:
    onnx.checker.check_model(onnx.load_from_string(_identity_model()))
    session = runtime.make_session(_identity_model(), ModelSettings(intra_op_threads=2, inter_op_threads=1))
    opts = session.get_session_options()
    assert (opts.intra_op_num_threads, opts.inter_op_num_threads) == (2, 1)
    assert session.get_providers() == ["CPUExecutionProvider"]
