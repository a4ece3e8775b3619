"""`lfr stack up/status/down` as a user runs them: real processes, nothing left behind."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lfr.core.bus import describe_partitions
from lfr.core.config import load_settings
from lfr.core.topics import topic_specs

pytestmark = pytest.mark.integration


def _lfr(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LFR_DATA_DIR": str(data_dir), "LFR_KAFKA__CROPS_PARTITIONS": "16"}
    return subprocess.run(
        [sys.executable, "-m", "lfr.cli", *args], env=env, capture_output=True, text=True, timeout=120
    )


def _pids_of(state: dict) -> list[int]:
    return [int(state[c]["pid"]) for c in ("s3", "kafka", "redis", "keystore", "milvus")]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.long  # starts and stops the whole local stack as processes: about 30 s
def test_stack_up_status_down(tmp_path: Path) -> None:
    t0 = time.monotonic()
    up = _lfr(tmp_path, "stack", "up")
    assert up.returncode == 0, up.stderr
    state = json.loads((tmp_path / "stack.json").read_text())
    try:
        status = _lfr(tmp_path, "stack", "status", "--json")
        assert status.returncode == 0, status.stderr
        doc = json.loads(status.stdout)
        assert doc["healthy"] is True
        assert doc["components"] == ["s3", "kafka", "redis", "keystore", "milvus"]
        assert all(doc[c]["healthy"] is True for c in doc["components"])
        # The defaults: durable broker storage, Milvus Lite, persistent Redis, memory-only key store.
        assert doc["kafka"]["storage"] == "s3://tansu/" and doc["s3"]["kind"] == "seaweedfs"
        assert doc["milvus"]["kind"] == "lite"
        assert doc["redis"]["persistence"] == "append-only file"
        assert doc["keystore"]["persistence"] == "none (memory only)"
        text = _lfr(tmp_path, "stack", "status")
        assert "lite" in text.stdout and "s3://tansu/" in text.stdout
        settings = load_settings(data_dir=tmp_path, kafka={"crops_partitions": 16})
        counts = asyncio.run(describe_partitions(settings, [s.name for s in topic_specs(settings)]))
        assert counts == {s.name: s.partitions for s in topic_specs(settings)}
        assert counts["lfr.crops.v1"] == 16 and counts["lfr.audit.v1"] == 1
        again = _lfr(tmp_path, "stack", "up")  # idempotent: same processes
        assert again.returncode == 0
        assert _pids_of(json.loads((tmp_path / "stack.json").read_text())) == _pids_of(state)
    finally:
        down = _lfr(tmp_path, "stack", "down")
    assert down.returncode == 0, down.stderr
    elapsed = time.monotonic() - t0
    assert not any(_alive(p) for p in _pids_of(state)), "stack down left a process running"
    status = _lfr(tmp_path, "stack", "status", "--json")
    assert status.returncode == 1 and json.loads(status.stdout)["healthy"] is False
    print(f"stack up + status + down: {elapsed:.1f}s")
    assert elapsed < 60


@pytest.mark.long
def test_stack_up_flags_choose_the_milvus_server_and_broker_storage(tmp_path: Path) -> None:
    up = _lfr(tmp_path, "stack", "up", "--milvus", "standalone", "--broker-storage", "memory")
    try:
        assert up.returncode == 0, up.stderr
        assert "listens on every network interface" in up.stderr  # the standalone server's exposure
        doc = json.loads(_lfr(tmp_path, "stack", "status", "--json").stdout)
        assert doc["healthy"] is True
        assert doc["components"] == ["kafka", "redis", "keystore", "milvus"]  # no S3 store for memory
        assert doc["milvus"]["kind"] == "standalone" and doc["kafka"]["storage"] == "memory://tansu/"
    finally:
        assert _lfr(tmp_path, "stack", "down").returncode == 0
    bad = _lfr(tmp_path, "stack", "up", "--milvus", "cloud")
    assert bad.returncode == 2 and "lite or standalone" in bad.stderr
