"""Makes the alerting test helpers importable as ``alerting_support`` (hits built as the embedder builds
them, the alerting service in-process, a webhook receiver): the contract tests produce alerts the same way."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path


def _load_alerting_support() -> None:
    if "alerting_support" in sys.modules:
        return
    path = Path(__file__).resolve().parents[1] / "alerting" / "support.py"
    spec = importlib.util.spec_from_file_location("alerting_support", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["alerting_support"] = module
    spec.loader.exec_module(module)


_load_alerting_support()
