"""``python -m lfr.alerting``: the alerting worker without the full CLI (same as ``lfr alert``)."""

from __future__ import annotations

from lfr.alerting.service import main
from lfr.core.config import get_settings
from lfr.core.service import run_service

if __name__ == "__main__":
    run_service(get_settings(), "alerting", main)
