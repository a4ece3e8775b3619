"""Redis through Sentinel: a real redis-server and a real Sentinel (the same binary in sentinel mode)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from lfr.core.config import load_settings
from lfr.core.redis_client import make_redis
from lfr.stack.local import free_port, redis_binary

pytestmark = pytest.mark.integration

MASTER = "lfr-master"


def _wait(port: int, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if redis.Redis(port=port, socket_timeout=0.5).ping():
                return
        except redis.RedisError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing answered on port {port}")


@pytest.fixture
def sentinel(tmp_path: Path) -> Iterator[tuple[int, int]]:
    binary = str(redis_binary(load_settings(data_dir=str(tmp_path))))
    master_port, sentinel_port = free_port(), free_port()
    conf = tmp_path / "sentinel.conf"  # Sentinel rewrites its config file, so it must be writable
    conf.write_text(
        f"port {sentinel_port}\nbind 127.0.0.1\ndir {tmp_path}\n"
        f"sentinel monitor {MASTER} 127.0.0.1 {master_port} 1\n"
    )
    procs = [
        subprocess.Popen(
            [binary, "--port", str(master_port), "--bind", "127.0.0.1", "--save", "", "--dir", str(tmp_path)],
            stdout=subprocess.DEVNULL,
        ),
        subprocess.Popen([binary, str(conf), "--sentinel"], stdout=subprocess.DEVNULL),
    ]
    try:
        _wait(master_port)
        _wait(sentinel_port)
        yield master_port, sentinel_port
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=10)


async def test_clients_find_the_master_through_sentinel(sentinel: tuple[int, int], tmp_path: Path) -> None:
    master_port, sentinel_port = sentinel
    settings = load_settings(
        data_dir=str(tmp_path),
        redis={"sentinels": [f"127.0.0.1:{sentinel_port}"], "sentinel_master": MASTER},
    )
    client = make_redis(settings)
    try:
        await client.set("lfr:probe", b"1", ex=30)
        # The value landed on the master the sentinel names, and scripts (dedupe, stats) run there too.
        assert redis.Redis(port=master_port).get("lfr:probe") == b"1"
        assert await client.eval("return redis.call('INCR', KEYS[1])", 1, "lfr:n") == 1
    finally:
        await client.aclose()


def test_sentinel_entries_must_be_host_port(tmp_path: Path) -> None:
    from lfr.core.config import ConfigError

    with pytest.raises(ConfigError, match="host:port"):
        load_settings(data_dir=str(tmp_path), redis={"sentinels": ["no-port-here"]})
