"""Milvus client options and the transient-error rule the embedder's retries depend on."""

from __future__ import annotations

import grpc
from pymilvus.exceptions import MilvusException

from lfr.core.config import load_settings
from lfr.core.milvus import CONNECT_FAILED, grpc_options, is_unavailable, tls_options


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


def test_tls_follows_the_uri_or_the_setting_and_names_the_ca() -> None:
    plain = load_settings(milvus={"uri": "http://milvus:19530"})
    assert tls_options(plain, plain.milvus.uri) == {}
    https = load_settings(milvus={"uri": "https://milvus:19530", "tls_ca_file": "/etc/lfr/milvus-tls/ca.crt"})
    assert tls_options(https, https.milvus.uri) == {
        "secure": True,
        "server_pem_path": "/etc/lfr/milvus-tls/ca.crt",
    }
    named = load_settings(milvus={"uri": "http://10.0.0.5:19530", "tls": True, "tls_server_name": "milvus"})
    assert tls_options(named, named.milvus.uri) == {"secure": True, "server_name": "milvus"}


class _Client:
    """Stands in for MilvusClient: only whether it was closed matters here."""

    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


def test_one_connection_is_shared_and_closed_only_by_its_owner() -> None:
    from lfr.core.milvus import MilvusConnection
    from lfr.watchlist.store import WatchlistStore

    class Card:
        name, dim, metric = "c", 4, "L2"

        def to_score(self, raw: float) -> float:
            return raw

    settings = load_settings()
    first = _Client()
    shared = MilvusConnection(settings, first)  # type: ignore[arg-type]
    a = WatchlistStore(settings, Card(), milvus=shared)
    b = WatchlistStore(settings, Card(), milvus=shared)
    assert a.client is b.client is first
    a.close()  # a store never closes a connection it was handed
    assert not first.closed and b.client is first
    b._drop_channel()  # a broken channel: dropped for every store that shares it
    assert first.closed and not shared.connected
    own = _Client()
    alone = WatchlistStore(settings, Card(), client=own)  # type: ignore[arg-type]
    alone.close()  # a store that made its own connection closes it
    assert own.closed
