"""Where the shared face data lives: the default input of benchmarks, evaluations and the demo's extra scenes.

Why a lookup rather than a constant: the data sits beside the checkout on development machines, elsewhere
in CI and on a force's evaluation box, and not at all in a fresh clone; every caller must say so clearly
instead of failing on a missing path.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "LFR_SHARED_FACES"


def shared_faces_dir() -> Path:
    """The shared face data folder.

    ``$LFR_SHARED_FACES`` when set, else ``shared/data/faces`` beside the checkout, else beside the working
    directory (the first that exists; the checkout-relative path when neither does, for the error message).
    """
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env)
    candidates = [
        base.parent / "shared" / "data" / "faces"
        for base in (Path(__file__).resolve().parents[3], Path.cwd())
    ]
    return next((c for c in candidates if c.is_dir()), candidates[0])
