"""Fan-out of alert changes from Redis pub/sub to the consoles' live streams (SSE) in one API process.

Why one shared subscription: each console holds a stream open for hours; one pattern subscription per API
process (instead of one Redis connection per console) keeps Redis connections bounded by replicas, not by
officers. Pub/sub is fire-and-forget, so whenever the subscription had to be re-established, or a slow
client's queue overflowed, its stream is told to resynchronise (a fresh snapshot from the alert store)
rather than silently missing an alert.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from prometheus_client import Counter
from redis.exceptions import RedisError

from lfr.alerting.store import AlertKeys
from lfr.core.config import Settings

log = logging.getLogger(__name__)

RESYNC = "__resync__"
CLOSED = "__closed__"


def glob_escape(value: str) -> str:
    return "".join("\\" + c if c in "*?[]\\^" else c for c in value)


@dataclass(eq=False)
class Subscription:
    deployment_id: str
    queue: asyncio.Queue[str] = field(default_factory=lambda: asyncio.Queue(maxsize=1000))

    def offer(self, item: str) -> None:
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            # Too slow a reader: drop what it has not read and make it reload the whole list instead.
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(RESYNC)

    async def next(self, wait_s: float) -> str | None:
        """The next item, or None after ``wait_s`` without one (the stream then sends a keep-alive)."""
        try:
            return await asyncio.wait_for(self.queue.get(), timeout=wait_s)
        except TimeoutError:
            return None


DROPPED = Counter("lfr_alert_hub_dropped_total", "Pub/sub messages refused as malformed (not UTF-8 JSON)")


def clean_event(data: Any) -> str | None:
    """The message as one line of JSON, or None when it is not UTF-8 JSON.

    Whatever can publish on the channel reaches every officer's console, and the stream frames events by
    lines: a payload with a newline could forge events (``event: snapshot``...), and one that is not UTF-8
    would end the hub's task, silently stopping every live stream of this process. Re-serialising a parsed
    object makes both impossible.
    """
    try:
        doc = json.loads(data.decode("utf-8") if isinstance(data, bytes) else str(data))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(doc, dict):
        return None
    return json.dumps(doc, separators=(",", ":"))


class AlertHub:
    def __init__(self, settings: Settings, redis: aioredis.Redis) -> None:
        self.redis = redis
        self.keys = AlertKeys(settings)
        self._subs: dict[str, set[Subscription]] = defaultdict(set)
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._closed = False

    async def subscribe(self, deployment_id: str, timeout_s: float = 10.0) -> Subscription:
        """Returns once the Redis subscription is live, so a snapshot read afterwards misses nothing."""
        if self._closed:
            raise RuntimeError("alert hub closed")
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="alert-hub")
        sub = Subscription(deployment_id)
        self._subs[deployment_id].add(sub)
        try:
            await asyncio.wait_for(self._ready.wait(), timeout=timeout_s)
        except TimeoutError:
            self.unsubscribe(sub)
            raise ConnectionError("live alert stream unavailable (Redis pub/sub)") from None
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.deployment_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.deployment_id]

    @property
    def clients(self) -> int:
        return sum(len(s) for s in self._subs.values())

    def _broadcast(self, item: str) -> None:
        for subs in list(self._subs.values()):
            for sub in list(subs):
                sub.offer(item)

    async def _run(self) -> None:
        base = self.keys.channel_base()
        pattern = glob_escape(base) + "*"
        delay = 0.5
        connected_before = False
        while not self._closed:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.psubscribe(pattern)
                while True:  # wait for the server's confirmation: only then is the subscription live
                    msg = await pubsub.get_message(timeout=1.0)
                    if msg is not None and msg.get("type") == "psubscribe":
                        break
                self._ready.set()
                if connected_before:
                    self._broadcast(RESYNC)
                connected_before = True
                delay = 0.5
                while not self._closed:
                    msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if msg is None or msg.get("type") != "pmessage":
                        continue
                    raw = msg["channel"]
                    channel = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else str(raw)
                    self._dispatch(channel[len(base) :], msg["data"])
            except (RedisError, OSError) as exc:
                self._ready.clear()
                log.warning("alert hub lost Redis pub/sub (%s); reconnecting", type(exc).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    def _dispatch(self, deployment_id: str, data: Any) -> None:
        subs = self._subs.get(deployment_id)
        if not subs:
            return
        payload = clean_event(data)
        if payload is None:
            DROPPED.inc()
            log.warning(
                "alert hub dropped a malformed message on the channel of deployment %s", deployment_id
            )
            return
        for sub in list(subs):
            sub.offer(payload)

    async def aclose(self) -> None:
        self._closed = True
        self._broadcast(CLOSED)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
