"""The failures the alert rules watch are counted: audit appends that fail and key-store calls that fail."""

from __future__ import annotations

import socket

import pytest
import redis.asyncio as aioredis
from prometheus_client import REGISTRY
from redis.exceptions import ConnectionError as RedisConnectionError

from lfr.core.audit import AuditLog
from lfr.core.config import Settings
from lfr.core.crypto import CropKeyring


def _down_redis() -> aioredis.Redis:
    """A real client of a Redis that is not there (a port nothing listens on)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return aioredis.Redis(
        host="127.0.0.1", port=port, socket_connect_timeout=0.5, retry_on_error=[], retry=None
    )


def _value(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_an_audit_append_that_fails_is_counted() -> None:
    before = _value("lfr_audit_append_failures_total", {"error": "ConnectionError"})
    log = AuditLog(Settings(), producer=None, redis=_down_redis())  # type: ignore[arg-type]
    with pytest.raises(RedisConnectionError):
        await log.append("ops.user", "test.action", "target")
    assert _value("lfr_audit_append_failures_total", {"error": "ConnectionError"}) == before + 1


async def test_key_store_failures_are_counted_per_operation() -> None:
    keyring = CropKeyring(Settings(), redis=_down_redis())
    before = {op: _value("lfr_keystore_errors_total", {"operation": op}) for op in ("current", "lookup")}
    with pytest.raises(RedisConnectionError):
        await keyring.current()
    with pytest.raises(RedisConnectionError):
        await keyring.lookup("some-key")
    for op in ("current", "lookup"):
        assert _value("lfr_keystore_errors_total", {"operation": op}) == before[op] + 1
