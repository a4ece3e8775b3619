"""Shared fixtures: the real embedded stack on free loopback ports, built models, and the shared face data.

The stack fixture starts the Tansu broker, a real redis-server and a Milvus Lite server once per session
in a temporary data dir (the same code as ``lfr stack up``) and stops exactly those processes at the end.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from lfr.core.config import Settings, load_settings

REPO = Path(__file__).resolve().parents[1]
SHARED_FACES = Path(os.environ.get("LFR_SHARED_FACES", REPO.parent / "shared" / "data" / "faces"))
MODELS_DIR = Path(os.environ.get("LFR_TEST_MODELS_DIR", REPO / ".lfr" / "models"))


@pytest.fixture(scope="session")
def shared_faces() -> Path:
    if not SHARED_FACES.is_dir():
        pytest.skip(f"shared face data not found at {SHARED_FACES} (CI has it; a fresh clone may not)")
    return SHARED_FACES


@pytest.fixture(scope="session")
def models_dir() -> Path:
    """The project's built models (``lfr models build``; fast when already built by ``make setup``)."""
    from lfr.vision import build_models

    build_models(MODELS_DIR)
    return MODELS_DIR


@pytest.fixture(scope="session")
def stack_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    from lfr.stack.local import LocalStack

    data_dir = tmp_path_factory.mktemp("lfr-stack")
    settings = load_settings(data_dir=data_dir, models={"dir": MODELS_DIR},
                             kafka={"crops_partitions": 8, "hits_partitions": 4, "alerts_partitions": 4})
    stack = LocalStack(settings)
    stack.up()
    state = stack.state()
    resolved = load_settings(
        data_dir=data_dir,
        models={"dir": MODELS_DIR},
        kafka={"bootstrap_servers": state["kafka"]["url"], "crops_partitions": 8, "hits_partitions": 4,
               "alerts_partitions": 4},
        redis={"url": state["redis"]["url"]},
        milvus={"uri": state["milvus"]["url"]},
    )
    try:
        yield resolved
    finally:
        stack.down()


@pytest.fixture
def settings_for(stack_settings: Settings):
    """Settings for one test: the session's stack plus overrides; a unique Redis prefix isolates state."""
    import uuid

    def make(**overrides: object) -> Settings:
        data = stack_settings.model_dump()
        data["redis"]["key_prefix"] = f"lfr-test-{uuid.uuid4().hex[:8]}:"
        for k, v in overrides.items():
            if isinstance(v, dict) and isinstance(data.get(k), dict):
                data[k].update(v)
            else:
                data[k] = v
        return Settings(**data)

    return make
