"""Webhook signatures: how LFR signs a delivery and how a receiver checks it.

This module lives in the client package so that a receiver can verify deliveries with ``lfr[client]``
alone (standard library only here); the alerting service signs with the same :func:`sign`, so the two sides
cannot drift apart.

Request format::

    POST <subscriber url>
    Content-Type: application/json
    X-LFR-Event: alert
    X-LFR-Delivery: <entry id, stable across retries>
    X-LFR-Timestamp: <unix seconds of this attempt>
    X-LFR-Signature: sha256=<hex HMAC-SHA256(secret, f"{timestamp}.{body}")>

A receiver accepts a request only when it is authentic, at most ``DEFAULT_TOLERANCE_S`` away from its
clock, and its signature has not been accepted before (:func:`verify_request` with a :class:`ReplayGuard`).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping

SIGNATURE_HEADER = "X-LFR-Signature"
TIMESTAMP_HEADER = "X-LFR-Timestamp"
DELIVERY_HEADER = "X-LFR-Delivery"
EVENT_HEADER = "X-LFR-Event"
DEFAULT_TOLERANCE_S = 300


def sign(secret: str | bytes, timestamp: int | str, body: str | bytes) -> str:
    """``sha256=<hex>`` over ``f"{timestamp}.{body}"``: binding the time stops replays of old requests."""
    key = secret.encode() if isinstance(secret, str) else secret
    raw = body.encode() if isinstance(body, str) else body
    mac = hmac.new(key, str(timestamp).encode() + b"." + raw, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(
    secret: str | bytes,
    body: str | bytes,
    timestamp: str | int | None,
    signature: str | None,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> bool:
    """For webhook receivers: True when the request is authentic and fresh.

    Pass the raw request body exactly as received (before any JSON parsing), the ``X-LFR-Timestamp`` and
    ``X-LFR-Signature`` header values and the subscriber's shared secret. Requests older or newer than
    ``tolerance_s`` are refused so a captured request cannot be replayed later. Comparison is constant-time.
    This alone still accepts a replay inside the window: receivers use :func:`verify_request`.
    """
    if not timestamp or not signature:
        return False
    try:
        ts = int(timestamp)
    except (TypeError, ValueError):
        return False
    current = time.time() if now is None else now
    if abs(current - ts) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, ts, body), signature.strip())


class ReplayGuard:
    """For receivers: refuses a request whose signature was already seen within the tolerance window.

    The timestamp check of :func:`verify_signature` bounds a replay to ``tolerance_s``; this closes that
    window too. Each attempt carries a fresh timestamp and so a fresh signature, so a retry of a delivery
    the receiver never acknowledged is accepted, while a captured request sent again is not. (A retry of a
    delivery that *was* processed, say after a lost response, carries the same ``X-LFR-Delivery``: answer
    it 2xx and do nothing, which is de-duplication, not a replay.) Signatures are forgotten once they are
    too old to pass the timestamp check, so memory is bounded by the request rate times the window.
    Several receiver replicas must share this state (e.g. Redis ``SET sig 1 NX EX tolerance``).
    """

    def __init__(self, tolerance_s: int = DEFAULT_TOLERANCE_S) -> None:
        self.tolerance_s = tolerance_s
        self._seen: dict[str, int] = {}

    def first_time(self, signature: str, timestamp: int, now: float | None = None) -> bool:
        current = time.time() if now is None else now
        cutoff = current - self.tolerance_s
        for sig in [s for s, ts in self._seen.items() if ts < cutoff]:
            del self._seen[sig]
        if signature in self._seen:
            return False
        self._seen[signature] = timestamp
        return True

    def __len__(self) -> int:
        return len(self._seen)


def verify_request(
    secret: str | bytes,
    body: bytes,
    headers: Mapping[str, str],
    guard: ReplayGuard,
    now: float | None = None,
) -> bool:
    """For receivers: authentic, fresh and not seen before (:func:`verify_signature` plus the guard)."""
    lower = {k.lower(): v for k, v in headers.items()}
    timestamp = lower.get(TIMESTAMP_HEADER.lower())
    signature = lower.get(SIGNATURE_HEADER.lower())
    if not verify_signature(secret, body, timestamp, signature, guard.tolerance_s, now):
        return False
    assert timestamp is not None and signature is not None  # verify_signature refused missing ones
    return guard.first_time(signature.strip(), int(timestamp), now)
