"""Reuses the alerting tests' helpers (HitMaker, AlertTail, alerting_running) through their own loader."""

from __future__ import annotations

import importlib.util
from pathlib import Path

_ALERTING = Path(__file__).resolve().parents[1] / "alerting" / "conftest.py"
_spec = importlib.util.spec_from_file_location("lfr_alerting_tests_conftest", _ALERTING)
assert _spec is not None and _spec.loader is not None
_spec.loader.exec_module(importlib.util.module_from_spec(_spec))  # registers the module "alerting_support"
