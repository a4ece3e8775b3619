"""Time helpers: protobuf Timestamps and epoch milliseconds."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def ts_from_ms(ms: int) -> Timestamp:
    ts = Timestamp()
    ts.FromMilliseconds(ms)
    return ts


def ts_now() -> Timestamp:
    return ts_from_ms(now_ms())


def ms_from_ts(ts: Timestamp) -> int:
    return int(ts.ToMilliseconds())


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds")
