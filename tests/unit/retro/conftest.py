"""A real redis-server for the import-job tests: the job scripts are Lua, which only a real server runs."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import pytest
import redis

from lfr.core.config import load_settings
from lfr.stack.local import free_port, redis_binary


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    port = free_port()
    settings = load_settings()
    argv = [str(redis_binary(settings)), "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    proc = subprocess.Popen([*argv, "--appendonly", "no"], stdout=subprocess.DEVNULL)
    try:
        client = redis.Redis(port=port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)
