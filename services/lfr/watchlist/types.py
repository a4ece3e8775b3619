"""Domain vocabulary shared by the watchlist store, enrolment, deployments, the API and the CLI.

Identifiers are validated once, here, with a strict pattern because they end up inside Milvus filter
expressions (Milvus Lite does not support filter templating) and Redis key names: a value that could
close a string literal or add a clause must never reach either. Times are epoch seconds (UTC) so that
the vector store, Redis and the wire all compare the same integers.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, date, datetime
from enum import StrEnum

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$"
_ID_RE = re.compile(ID_PATTERN)
_DURATION_RE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class Category(StrEnum):
    """Why a person is on a watchlist; officers see it beside every alert and it drives their response."""

    WANTED = "wanted"
    MISSING = "missing"
    VULNERABLE = "vulnerable"
    OTHER = "other"


def validate_id(value: str, kind: str = "id") -> str:
    """Return ``value`` if it is a safe identifier, else raise ValueError naming the field and the rule."""
    if not isinstance(value, str) or not _ID_RE.match(value):
        raise ValueError(
            f"invalid {kind} {value!r}: 1-128 characters, letters, digits and . _ : @ - only, "
            "starting with a letter or digit"
        )
    return value


def now_s() -> int:
    return int(time.time())


def parse_when(value: str | int | float | datetime | date | None, *, now: int | None = None) -> int:
    """Epoch seconds from an ISO date/datetime, epoch seconds, or a duration from now ("90d", "12h").

    ``None``, ``""``, ``0`` and ``"never"`` mean "no time" and return 0, which the store reads as
    "does not expire". Naive datetimes are taken as UTC because servers and officers' laptops disagree
    about local time, and an expiry must mean the same instant everywhere.
    """
    if value is None:
        return 0
    if isinstance(value, datetime):
        dt = value if value.tzinfo else value.replace(tzinfo=UTC)
        return int(dt.timestamp())
    if isinstance(value, date):
        return int(datetime(value.year, value.month, value.day, tzinfo=UTC).timestamp())
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"time {value} is negative")
        return int(value)
    text = str(value).strip()
    if text in ("", "0", "never", "none"):
        return 0
    if text.isdigit():
        return int(text)
    m = _DURATION_RE.match(text.lower())
    if m:
        base = now_s() if now is None else now
        return base + int(m.group(1)) * _UNITS[m.group(2)]
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"cannot read time {text!r}: use an ISO date (2026-12-31), an ISO datetime, epoch seconds "
            "or a duration such as 90d"
        ) from None
    return parse_when(dt)


def iso_s(epoch_s: int) -> str:
    """ISO-8601 UTC text for epoch seconds; empty for 0 (no time)."""
    if not epoch_s:
        return ""
    return datetime.fromtimestamp(epoch_s, tz=UTC).isoformat(timespec="seconds")


def parse_image_date(value: str | date | None) -> str:
    """An image date as ``YYYY-MM-DD`` (or empty when unknown); rejects anything else clearly."""
    if value is None:
        return ""
    if isinstance(value, date):
        return value.isoformat()
    text = str(value).strip()
    if not text:
        return ""
    try:
        return date.fromisoformat(text[:10]).isoformat()
    except ValueError:
        raise ValueError(f"invalid image_date {text!r}: use YYYY-MM-DD") from None
