"""ONNX Runtime session construction shared by every backend.

Why one place: thread counts and the execution provider are deployment settings (ModelSettings), and the
measured behaviour on these CPUs (two ORT threads slower than one for the small MTCNN nets) means the
defaults must be applied consistently rather than per backend.
"""

from __future__ import annotations

import logging
from pathlib import Path

import onnxruntime as ort

from lfr.core.config import ModelSettings

log = logging.getLogger(__name__)


def providers_for(models: ModelSettings) -> list[str]:
    """CPU by default; CUDA first when asked for and available (falls back to CPU with a warning)."""
    if models.execution_provider == "cuda":
        if "CUDAExecutionProvider" in ort.get_available_providers():
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]
        log.warning("execution_provider=cuda but onnxruntime has no CUDAExecutionProvider; using CPU")
    return ["CPUExecutionProvider"]


def make_session(path: Path | bytes, models: ModelSettings) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = models.intra_op_threads
    so.inter_op_num_threads = models.inter_op_threads
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    src = path if isinstance(path, bytes) else str(path)
    return ort.InferenceSession(src, sess_options=so, providers=providers_for(models))
