"""Milvus client options and the transient-error rule the embedder's retries depend on."""

from __future__ import annotations

import grpc
from pymilvus.exceptions import MilvusException

from lfr.core.config import load_settings
from lfr.core.milvus import CONNECT_FAILED, grpc_options, is_unavailable


class _Rpc(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode) -> None:
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code


def test_idle_channels_never_ping() -> None:
    opts = grpc_options(load_settings(milvus={"keepalive_s": 90}))
    assert opts["grpc.keepalive_permit_without_calls"] == 0
    assert opts["grpc.keepalive_time_ms"] == 90_000


def test_only_unreachable_servers_count_as_transient() -> None:
    assert is_unavailable(MilvusException(code=CONNECT_FAILED, message="Fail connecting to server"))
    assert is_unavailable(_Rpc(grpc.StatusCode.UNAVAILABLE))
    assert is_unavailable(ConnectionRefusedError())
    assert not is_unavailable(MilvusException(code=1100, message="invalid filter expression"))
    assert not is_unavailable(_Rpc(grpc.StatusCode.INVALID_ARGUMENT))
    assert not is_unavailable(ValueError("bad vector"))
