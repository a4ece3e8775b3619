"""Model latency and recall benchmark, runnable without the CLI wiring: ``python load-tests/bench_models.py``.

Prints the same JSON object as ``lfr bench models --json`` (median latencies with one ORT and one OpenCV
thread, recall on the labelled street video when the shared face data is present: ``$LFR_SHARED_FACES`` or
../shared/data/faces).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from lfr.bench.models import run_model_bench
from lfr.core.config import get_settings
from lfr.core.shared_data import shared_faces_dir

if __name__ == "__main__":
    faces = Path(sys.argv[1]) if len(sys.argv) > 1 else shared_faces_dir()
    print(json.dumps(run_model_bench(get_settings(), faces_dir=faces)))
