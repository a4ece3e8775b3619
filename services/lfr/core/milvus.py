"""Milvus clients from settings, one place for the connection options every caller shares.

gRPC keepalive: pymilvus pings every 10 s even on idle channels, and a server with gRPC's default ping policy
(the embedded Milvus Lite server among them) answers an idle client's pings with GOAWAY "too many pings",
after which every call fails. Pings are therefore sent only while a call is in flight, at an interval the
settings choose (production Milvus can allow more; keep it above the server's minimum).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import grpc
from pymilvus import MilvusClient
from pymilvus.exceptions import MilvusException

from lfr.core.config import Settings

# pymilvus's code for "could not connect" (Status.CONNECT_FAILED).
CONNECT_FAILED = 2


class MilvusUnavailable(ConnectionError):
    """Milvus cannot be reached right now; stages retry, and the caller reconnects on the next call."""


# gRPC's own reconnect backoff grows to 120 s: after a 30 s Milvus outage the channel's next attempt came
# 20-25 s after the server was back (measured by the fault suite), however often the stage retried. Capped,
# a channel tries again within a few seconds of the server returning.
RECONNECT_BACKOFF_MAX_MS = 3_000


def grpc_options(settings: Settings) -> dict[str, Any]:
    m = settings.milvus
    return {
        "grpc.keepalive_time_ms": m.keepalive_s * 1000,
        "grpc.keepalive_timeout_ms": 20_000,
        "grpc.keepalive_permit_without_calls": 0,
        "grpc.initial_reconnect_backoff_ms": 500,
        "grpc.min_reconnect_backoff_ms": 500,
        "grpc.max_reconnect_backoff_ms": RECONNECT_BACKOFF_MAX_MS,
    }


def tls_options(settings: Settings, uri: str) -> dict[str, Any]:
    """pymilvus's TLS arguments: the server is verified against the configured CA (or the system's)."""
    m = settings.milvus
    if not (m.tls or uri.startswith("https://")):
        return {}
    opts: dict[str, Any] = {"secure": True}
    if m.tls_ca_file:
        opts["server_pem_path"] = str(m.tls_ca_file)
    if m.tls_server_name:
        opts["server_name"] = m.tls_server_name
    return opts


def make_milvus(settings: Settings, uri: str | None = None) -> MilvusClient:
    m = settings.milvus
    token = m.token.get_secret_value() if m.token else ""
    target = uri or settings.milvus_uri
    return MilvusClient(
        uri=target,
        token=token,
        db_name=m.db_name,
        grpc_options=grpc_options(settings),
        **tls_options(settings, target),
    )


class MilvusConnection:
    """The Milvus client of one process, made on first use and shared by every store handed this holder.

    Why one holder: each ``MilvusClient`` opens its own gRPC channel (and, on Milvus Lite, its own server
    connection); the API process reached the same server through a client per watchlist store, per custody
    gallery and per retrospective searcher. Stores handed a holder never close it: whoever built it (a
    composition root: the API context, a command, a worker) closes it once at the end. ``reset`` drops a
    channel that failed, so the next call of any store reconnects.
    """

    def __init__(self, settings: Settings, client: MilvusClient | None = None) -> None:
        self.settings = settings
        self._client = client
        self._lock = threading.Lock()

    @property
    def client(self) -> MilvusClient:
        with self._lock:
            if self._client is None:
                self._client = make_milvus(self.settings)
            return self._client

    @property
    def connected(self) -> bool:
        return self._client is not None

    def reset(self) -> None:
        """Close and forget the client (after a broken channel); the next use connects afresh."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def close(self) -> None:
        self.reset()


def is_unavailable(exc: BaseException) -> bool:
    """Whether an error means the server is unreachable (retry later), not that the request was wrong."""
    if isinstance(exc, MilvusException):
        return exc.code == CONNECT_FAILED or "unavailable" in str(exc).lower()
    if isinstance(exc, grpc.RpcError):
        code = exc.code() if callable(getattr(exc, "code", None)) else None
        return code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    return isinstance(exc, ConnectionError | TimeoutError)


def index_pending(client: MilvusClient, collection: str, field: str = "vector") -> int | None:
    """Rows of ``collection`` the server has not indexed yet (None where it does not report progress).

    Rows written since the last index build are searched through the server's interim index on growing
    segments, with its own (low) probe count, so a search right after a bulk write can miss rows the built
    index finds (docs/accuracy.md, Custody galleries).
    """
    idx = client.describe_index(collection, field) or {}
    indexed, total = idx.get("indexed_rows"), idx.get("total_rows")
    if indexed is not None and total is not None:
        # Not pending_index_rows: Milvus 2.3 left it at 536,000 for a 1,000,000-row collection whose
        # rows were all indexed (segments compacted after their index was built still count there).
        return max(0, int(total) - int(indexed))
    pending = idx.get("pending_index_rows")
    return None if pending is None else int(pending)


def wait_indexed(client: MilvusClient, collection: str, timeout_s: float, poll_s: float = 1.0) -> bool:
    """Wait until every row is indexed; True when it is (or the server does not report progress)."""
    deadline = time.monotonic() + timeout_s
    while True:
        pending = index_pending(client, collection)
        if not pending:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll_s)
