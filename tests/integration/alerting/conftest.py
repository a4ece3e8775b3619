"""Makes the shared helpers importable as ``alerting_support`` (the tests are not on sys.path)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path


def load_support() -> None:
    if "alerting_support" in sys.modules:
        return
    path = Path(__file__).resolve().parent / "support.py"
    spec = importlib.util.spec_from_file_location("alerting_support", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["alerting_support"] = module
    spec.loader.exec_module(module)


load_support()
