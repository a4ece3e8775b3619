"""`python -m lfr.monitor`: the monitor stage alone, without loading the other services' commands."""

from lfr.core.config import get_settings
from lfr.monitor.stage import run_monitor

run_monitor(get_settings())
