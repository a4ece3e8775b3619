"""What the API does before any route runs: body size limits, rate limits, lock-out and security headers.

Why an ASGI middleware and not route code: a body is refused while it streams in (a 10 GB multipart upload
is cut off at the limit, before any form parser spools it to disk), a flood of requests is refused before
a handler or Redis is touched, and a route added later is covered without remembering to.

- Bodies: multipart uploads up to ``api.max_upload_bytes`` (plus the form's own overhead), every other
  body up to ``api.max_body_bytes``; larger ones get 413, whether declared by Content-Length or streamed.
- Rate: each bearer token (or, without one, each client address) gets ``api.rate_limit_per_minute``
  requests a minute with a burst of ``api.rate_limit_burst``; beyond that, 429 with Retry-After.
- Lock-out: a client address that presents ``api.lockout_failures`` bad tokens within
  ``api.lockout_window_s`` is refused (429) for ``api.lockout_s``, even with a good token, so tokens
  cannot be guessed at speed.
- Headers: every response says nosniff, no referrer and no framing; API responses get a CSP that allows
  nothing (they are data, never pages); the console's own stricter CSP is kept.

Counters live in the process: each API replica limits on its own (a gateway in front can add a global
limit). Tokens are never stored or logged: the limiter keys on a keyed hash of the token.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lfr.core.config import ApiSettings

log = logging.getLogger(__name__)

MULTIPART_OVERHEAD = 64 * 1024
MAX_TRACKED = 10_000  # clients and tokens remembered at once; the oldest are forgotten first
COMMON_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
)
API_CSP = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")


class BodyTooLarge(Exception):
    """Raised into the route when a streamed body passes its limit; the middleware answers 413."""


@dataclass
class _Bucket:
    tokens: float
    updated: float


class TokenBuckets:
    """``rate`` requests a minute per key with bursts of ``burst``; bounded memory (LRU)."""

    def __init__(self, per_minute: int, burst: int, clock: Callable[[], float]) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self.clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def take(self, key: str) -> float:
        """0 when the request may go ahead, else the seconds until it may."""
        now = self.clock()
        b = self._buckets.pop(key, None) or _Bucket(self.burst, now)
        b.tokens = min(self.burst, b.tokens + (now - b.updated) * self.rate)
        b.updated = now
        self._buckets[key] = b
        while len(self._buckets) > MAX_TRACKED:
            self._buckets.popitem(last=False)
        if b.tokens >= 1.0:
            b.tokens -= 1.0
            return 0.0
        return (1.0 - b.tokens) / self.rate if self.rate > 0 else math.inf


class Lockout:
    """Bad-token counts per client address in a sliding window; a locked address waits ``lock_s``."""

    def __init__(self, failures: int, window_s: float, lock_s: float, clock: Callable[[], float]) -> None:
        self.failures = failures
        self.window_s = window_s
        self.lock_s = lock_s
        self.clock = clock
        self._seen: OrderedDict[str, deque[float]] = OrderedDict()
        self._locked: dict[str, float] = {}

    def locked_for(self, client: str) -> float:
        until = self._locked.get(client)
        if until is None:
            return 0.0
        left = until - self.clock()
        if left <= 0:
            del self._locked[client]
            return 0.0
        return left

    def failed(self, client: str) -> bool:
        """Record a bad token; True when this failure locks the address out."""
        now = self.clock()
        seen = self._seen.pop(client, None) or deque()
        seen.append(now)
        while seen and seen[0] <= now - self.window_s:
            seen.popleft()
        self._seen[client] = seen
        while len(self._seen) > MAX_TRACKED:
            self._seen.popitem(last=False)
        if len(seen) >= self.failures:
            self._locked[client] = now + self.lock_s
            seen.clear()
            return True
        return False


def bearer_token(scope: Scope) -> str | None:
    """The token as lfr.api.auth reads it: Authorization header, else ``access_token`` query parameter."""
    for name, value in scope.get("headers") or ():
        if name == b"authorization":
            text = value.decode("latin-1")
            if text.lower().startswith("bearer "):
                return text[7:].strip() or None
    query = parse_qs((scope.get("query_string") or b"").decode("latin-1"))
    values = query.get("access_token")
    return values[0] if values and values[0] else None


class ApiGuard:
    """The ASGI middleware; ``clock`` is injectable so tests need not sleep."""

    def __init__(self, app: ASGIApp, api: ApiSettings, clock: Callable[[], float] = time.monotonic) -> None:
        self.app = app
        self.api = api
        self.buckets = TokenBuckets(api.rate_limit_per_minute, api.rate_limit_burst, clock)
        self.lockout = Lockout(api.lockout_failures, api.lockout_window_s, api.lockout_s, clock)
        self._salt = os.urandom(16)  # per process: fingerprints cannot be compared across processes

    def _fingerprint(self, token: str) -> str:
        return hashlib.blake2b(token.encode(), key=self._salt, digest_size=12).hexdigest()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = (scope.get("client") or ("unknown", 0))[0]
        token = bearer_token(scope)
        wait = self.lockout.locked_for(client)
        if wait > 0:
            await _refuse(send, 429, "too many failed sign-ins from this address; try again later", wait)
            return
        wait = self.buckets.take("t:" + self._fingerprint(token) if token else "c:" + client)
        if wait > 0:
            await _refuse(send, 429, "rate limit exceeded", wait)
            return
        limit = self._body_limit(scope)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _refuse(send, 413, f"request body exceeds {limit:,} bytes")
            return

        received = 0
        started = False
        exceeded = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise BodyTooLarge
            return message

        is_console = scope.get("path", "").startswith("/console")

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded:
                # The route's framework may turn the aborted read into its own error (FastAPI answers 400
                # "error parsing the body"): whatever it says, the client is told the real reason once.
                if not started:
                    started = True
                    await _refuse(send, 413, f"request body exceeds {limit:,} bytes")
                return
            if message["type"] == "http.response.start":
                started = True
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in _OURS]
                headers.extend(COMMON_HEADERS)
                csp = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() == b"content-security-policy"
                ]
                if csp:
                    headers.extend(csp)
                elif not is_console:
                    headers.append(API_CSP)
                message = {**message, "headers": headers}
                if token and message["status"] == 401 and self.lockout.failed(client):
                    log.warning("api: address %s locked out after repeated bad tokens", client)
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except BodyTooLarge:
            if not started:
                await _refuse(send, 413, f"request body exceeds {limit:,} bytes")

    def _body_limit(self, scope: Scope) -> int:
        for name, value in scope.get("headers") or ():
            if name == b"content-type" and value.lower().startswith(b"multipart/form-data"):
                return self.api.max_upload_bytes + MULTIPART_OVERHEAD
        return self.api.max_body_bytes


_OURS = {b"x-content-type-options", b"referrer-policy", b"x-frame-options", b"content-security-policy"}


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers") or ():
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _refuse(send: Send, status: int, detail: str, retry_after: float | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers.extend(COMMON_HEADERS)
    headers.append(API_CSP)
    if retry_after is not None:
        headers.append((b"retry-after", str(max(1, math.ceil(retry_after))).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
