"""Which Redis holds crop data keys: the configured key store, the local stack's, or (with a warning) the
main Redis."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from lfr.core.config import STACK_STATE_FILE, load_settings
from lfr.core.redis_client import make_keystore_redis


def _stack_state(data_dir: Path) -> None:
    state = {
        "redis": {"url": "redis://127.0.0.1:1001/0"},
        "keystore": {"url": "redis://127.0.0.1:1002/0"},
    }
    (data_dir / STACK_STATE_FILE).write_text(json.dumps(state))


def test_configured_key_store_wins(tmp_path: Path) -> None:
    _stack_state(tmp_path)
    s = load_settings(data_dir=tmp_path, redis={"keystore_url": "redis://ks.example:6379/1"})
    assert s.keystore_redis_url == "redis://ks.example:6379/1"


def test_stack_key_store_when_the_redis_url_also_comes_from_the_stack(tmp_path: Path) -> None:
    _stack_state(tmp_path)
    s = load_settings(data_dir=tmp_path)
    assert s.redis_url == "redis://127.0.0.1:1001/0"
    assert s.keystore_redis_url == "redis://127.0.0.1:1002/0"


async def test_falls_back_to_the_main_redis_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _stack_state(tmp_path)  # a configured main Redis is not paired with the stack's key store
    s = load_settings(data_dir=tmp_path, redis={"url": "redis://main.example:6379/0"})
    assert s.keystore_redis_url == "redis://main.example:6379/0"
    with caplog.at_level(logging.WARNING, logger="lfr.core.redis_client"):
        client = make_keystore_redis(s)
    await client.aclose()
    assert "no separate crop key store" in caplog.text


async def test_no_warning_with_a_key_store(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    s = load_settings(
        data_dir=tmp_path,
        redis={"url": "redis://main.example:6379/0", "keystore_url": "redis://ks.example:6379/0"},
    )
    with caplog.at_level(logging.WARNING, logger="lfr.core.redis_client"):
        client = make_keystore_redis(s)
    await client.aclose()
    assert caplog.text == ""
    assert client.connection_pool.connection_kwargs["host"] == "ks.example"
