"""Alert records in Redis: one hash per alert, an index per deployment, retention by EXPIRE, purge at once.

Why Redis and this layout: any alerting replica may own any partition of lfr.hits.v1 after a rebalance, so
the dedupe state and the alert record must live outside the process; every change to a record happens in
one Lua script (atomic on the server), so two replicas racing over a partition hand-over cannot produce two
different versions of the same revision. Keys (all under ``settings.redis.key_prefix``):

``alert:{alert_id}``            hash: the record (scalar fields below) plus ``probe``, the best probe chip as
                                a serialised EncryptedBlob (still sealed under the alert-retention key)
``alert:{alert_id}:hits``       set of hit ids already applied (a redelivered hit changes nothing)
``alert:{alert_id}:cams``       sorted set camera_id -> first time seen there
``alerts:dep:{deployment_id}``  sorted set alert_id -> last_seen ms (listing, purge)
``alerts:purged:{deployment}``  tombstone: purge time; hits captured before it are refused, so a replay of
                                lfr.hits.v1 cannot bring purged probe crops back
``alerts:events:{deployment}``  pub/sub channel of alert changes for the consoles' live streams

Every key of an alert gets ``EXPIRE alerting.retention_days`` on each hit (privacy rule 6); adjudication
does not extend it. Index entries whose record expired are dropped lazily when listed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.commands.core import AsyncScript

from lfr.core import stats
from lfr.core.config import Settings
from lfr.core.ids import derive_id
from lfr.core.redis_client import key as rkey
from lfr.core.redis_client import text
from lfr.core.serde import SerdeError, decode
from lfr.core.timeutil import now_ms, ts_from_ms
from lfr.v1.alert_pb2 import Alert, AlertStatus, SubjectSummary
from lfr.v1.common_pb2 import EncryptedBlob, TraceContext

log = logging.getLogger(__name__)

DAY_S = 24 * 3600

# Scalar fields of the alert hash, in the order the Lua scripts return them (HMGET).
FIELDS: tuple[str, ...] = (
    "alert_id",
    "deployment_id",
    "subject_id",
    "watchlist_id",
    "category",
    "threshold",
    "window_start",
    "first_seen",
    "last_seen",
    "hit_count",
    "best_score",
    "best_hit_id",
    "probe_crop_id",
    "status",
    "rev",
    "pub_rev",
    "counted",
    "created_ms",
    "traceparent",
    "adj_id",
    "adj_outcome",
    "adj_officer",
    "adj_note",
    "adj_at",
    "adj_steps",
)
FIELD_LIST_LUA = "{" + ",".join(f"'{f}'" for f in FIELDS) + "}"


class Status(StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    REJECTED = "rejected"
    UNDECIDED = "undecided"


class Outcome(StrEnum):
    """What an officer decided; the wire names of the API (``unable`` = unable to decide)."""

    MATCH = "match"
    NO_MATCH = "no_match"
    UNABLE = "unable"


OUTCOME_STATUS: dict[Outcome, Status] = {
    Outcome.MATCH: Status.CONFIRMED,
    Outcome.NO_MATCH: Status.REJECTED,
    Outcome.UNABLE: Status.UNDECIDED,
}
STATUS_PROTO: dict[str, int] = {
    Status.PENDING: AlertStatus.ALERT_STATUS_PENDING,
    Status.CONFIRMED: AlertStatus.ALERT_STATUS_CONFIRMED,
    Status.REJECTED: AlertStatus.ALERT_STATUS_REJECTED,
    Status.UNDECIDED: AlertStatus.ALERT_STATUS_UNDECIDED,
}


class AlertNotFound(LookupError):
    """No such alert: never existed, expired under retention, or purged."""


class AlreadyAdjudicated(Exception):
    """An officer already decided this alert differently; decisions are recorded once, never overwritten."""

    def __init__(self, state: AlertState) -> None:
        super().__init__(f"alert {state.alert_id} is already {state.status}")
        self.state = state


def probe_url(alert_id: str) -> str:
    return f"/api/v1/alerts/{alert_id}/probe.jpg"


def reference_url(alert_id: str) -> str:
    return f"/api/v1/alerts/{alert_id}/reference.jpg"


def adjudication_id(alert_id: str) -> str:
    """One decision per alert, so its id is derived: a retried POST republishes the same adjudication."""
    return derive_id("adjudication", alert_id)


@dataclass
class AlertState:
    """The record as read from Redis: what the topics, the console and the webhooks are built from."""

    alert_id: str
    deployment_id: str
    subject_id: str
    watchlist_id: str
    category: str
    threshold: float
    window_start: int
    first_seen: int
    last_seen: int
    hit_count: int
    best_score: float
    best_hit_id: str
    probe_crop_id: str
    status: str
    revision: int
    published_revision: int
    counted: bool
    created_ms: int
    traceparent: str = ""
    cameras: list[str] = field(default_factory=list)
    adjudication_id: str = ""
    adj_outcome: str = ""
    adj_officer: str = ""
    adj_note: str = ""
    adj_at: int = 0
    adj_steps: frozenset[str] = frozenset()

    @classmethod
    def from_values(cls, values: Sequence[bytes | str | None], cameras: Iterable[bytes | str]) -> AlertState:
        v = dict(zip(FIELDS, (text(x) for x in values), strict=True))
        return cls(
            alert_id=v["alert_id"],
            deployment_id=v["deployment_id"],
            subject_id=v["subject_id"],
            watchlist_id=v["watchlist_id"],
            category=v["category"],
            threshold=float(v["threshold"] or 0),
            window_start=int(v["window_start"] or 0),
            first_seen=int(v["first_seen"] or 0),
            last_seen=int(v["last_seen"] or 0),
            hit_count=int(v["hit_count"] or 0),
            best_score=float(v["best_score"] or 0),
            best_hit_id=v["best_hit_id"],
            probe_crop_id=v["probe_crop_id"],
            status=v["status"] or Status.PENDING,
            revision=int(v["rev"] or 0),
            published_revision=int(v["pub_rev"] or 0),
            counted=v["counted"] == "1",
            created_ms=int(v["created_ms"] or 0),
            traceparent=v["traceparent"],
            cameras=[text(c) for c in cameras],
            adjudication_id=v["adj_id"],
            adj_outcome=v["adj_outcome"],
            adj_officer=v["adj_officer"],
            adj_note=v["adj_note"],
            adj_at=int(v["adj_at"] or 0),
            adj_steps=frozenset(s for s in v["adj_steps"].split(",") if s),
        )

    def to_proto(self) -> Alert:
        return Alert(
            alert_id=self.alert_id,
            deployment_id=self.deployment_id,
            subject=SubjectSummary(
                subject_id=self.subject_id,
                watchlist_id=self.watchlist_id,
                category=self.category,
                display_ref=f"{self.watchlist_id}/{self.subject_id}",
            ),
            camera_ids=self.cameras,
            first_seen=ts_from_ms(self.first_seen),
            last_seen=ts_from_ms(self.last_seen),
            hit_count=self.hit_count,
            best_score=self.best_score,
            threshold=self.threshold,
            probe_image_ref=probe_url(self.alert_id),
            watchlist_image_ref=reference_url(self.alert_id),
            status=STATUS_PROTO.get(self.status, AlertStatus.ALERT_STATUS_UNSPECIFIED),  # type: ignore[arg-type]
            revision=self.revision,
            best_hit_id=self.best_hit_id,
            window_start=ts_from_ms(self.window_start),
            trace=TraceContext(traceparent=self.traceparent),
        )


def parse_state_reply(reply: Sequence[object]) -> AlertState:
    """Scripts reply ``[code, field values..., camera ids...]``; this reads the part after ``code``."""
    n = len(FIELDS)
    values = reply[1 : 1 + n]
    cameras = reply[1 + n :]
    return AlertState.from_values(values, cameras)  # type: ignore[arg-type]


# Marks a revision as produced to Kafka and, the first time, counts the alert in the deployment's statistics
# (KEYS[2], KEYS[3]: the total and minute hashes of lfr.core.stats). Counting here, in the same atomic step
# as the mark, is what makes the count exact: a worker killed between producing and marking (the moment a
# subscriber first sees the alert) leaves it uncounted and unmarked, and the re-emit counts it once.
# Never creates a record: a purge between produce and mark must not leave a key without TTL behind.
_MARK_PUBLISHED = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local cur = tonumber(redis.call('HGET', KEYS[1], 'pub_rev') or '0')
if tonumber(ARGV[1]) > cur then redis.call('HSET', KEYS[1], 'pub_rev', ARGV[1]) end
if redis.call('HGET', KEYS[1], 'counted') ~= '1' then
  redis.call('HSET', KEYS[1], 'counted', '1')
  for i = 3, #ARGV do
    redis.call('HINCRBY', KEYS[2], ARGV[i], 1)
    redis.call('HINCRBY', KEYS[3], ARGV[i], 1)
  end
  redis.call('EXPIRE', KEYS[3], tonumber(ARGV[2]))
end
return 1
"""

# Records an officer's decision. Codes: 1 = recorded now, 2 = the same decision was recorded before (the
# caller finishes whatever publishing steps are missing), 3 = a different decision exists, -1 = no alert.
_ADJUDICATE = f"""
if redis.call('EXISTS', KEYS[1]) == 0 then return {{-1}} end
local status = redis.call('HGET', KEYS[1], 'status')
local code = 1
if status ~= 'pending' then
  if redis.call('HGET', KEYS[1], 'adj_outcome') == ARGV[2] then code = 2 else code = 3 end
else
  redis.call('HSET', KEYS[1], 'status', ARGV[1], 'adj_outcome', ARGV[2], 'adj_officer', ARGV[3],
             'adj_note', ARGV[4], 'adj_at', ARGV[5], 'adj_id', ARGV[6], 'adj_steps', '')
  redis.call('HINCRBY', KEYS[1], 'rev', 1)
end
local out = {{code}}
for _, v in ipairs(redis.call('HMGET', KEYS[1], unpack({FIELD_LIST_LUA}))) do table.insert(out, v) end
for _, c in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do table.insert(out, c) end
return out
"""

# Records that one step of publishing a decision is done; the "counted" step also adds the decision to the
# statistics (KEYS[2], KEYS[3]) in the same atomic step, so a retried POST never counts it twice.
_ADD_STEP = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local steps = redis.call('HGET', KEYS[1], 'adj_steps') or ''
for s in string.gmatch(steps, '[^,]+') do if s == ARGV[1] then return 1 end end
if steps == '' then steps = ARGV[1] else steps = steps .. ',' .. ARGV[1] end
redis.call('HSET', KEYS[1], 'adj_steps', steps)
if #ARGV > 2 then
  for i = 3, #ARGV do
    redis.call('HINCRBY', KEYS[2], ARGV[i], 1)
    redis.call('HINCRBY', KEYS[3], ARGV[i], 1)
  end
  redis.call('EXPIRE', KEYS[3], tonumber(ARGV[2]))
end
return 1
"""


def category_counter(name: str, category: str) -> str:
    """Per-category counter names next to lfr.core.stats' totals (read back by the report)."""
    return f"{name}:category:{category or 'unknown'}"


def stats_keys(settings: Settings, deployment_id: str, at_ms: int | None = None) -> tuple[str, str]:
    """The (total, minute) hashes lfr.core.stats.add writes, so counting can join an atomic script here.

    Taken from lfr.core.stats itself so the layouts cannot drift; the tests read every count back through
    stats.totals and stats.per_minute.
    """
    return stats.counter_keys(settings, deployment_id, at_ms or now_ms())


def _ids(members: Iterable[Any]) -> list[str]:
    """Sorted-set members as str (replies are bytes; ZRANGE WITHSCORES is never used here)."""
    return [text(m) for m in members]


class AlertKeys:
    """Key and channel names; one place so the Lua scripts, the store and the live stream agree."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def alert(self, alert_id: str) -> str:
        return rkey(self.settings, "alert", alert_id)

    def hits(self, alert_id: str) -> str:
        return rkey(self.settings, "alert", alert_id, "hits")

    def cams(self, alert_id: str) -> str:
        return rkey(self.settings, "alert", alert_id, "cams")

    def index(self, deployment_id: str) -> str:
        return rkey(self.settings, "alerts", "dep", deployment_id)

    def tombstone(self, deployment_id: str) -> str:
        return rkey(self.settings, "alerts", "purged", deployment_id)

    def channel_base(self) -> str:
        return rkey(self.settings, "alerts", "events") + ":"

    def channel(self, deployment_id: str) -> str:
        return self.channel_base() + deployment_id

    def all_for(self, alert_id: str) -> list[str]:
        return [self.alert(alert_id), self.hits(alert_id), self.cams(alert_id)]


class AlertStore:
    """Reads, decisions, publication marks and purges of alert records (dedupe writes live in dedupe.py)."""

    def __init__(self, settings: Settings, redis: aioredis.Redis) -> None:
        self.settings = settings
        self.redis = redis
        self.keys = AlertKeys(settings)
        self._mark: AsyncScript = redis.register_script(_MARK_PUBLISHED)
        self._adjudicate: AsyncScript = redis.register_script(_ADJUDICATE)
        self._add_step: AsyncScript = redis.register_script(_ADD_STEP)

    @property
    def retention_s(self) -> int:
        return self.settings.alerting.retention_days * DAY_S

    async def get(self, alert_id: str) -> AlertState | None:
        found = await self.get_many([alert_id])
        return found[0]

    async def get_many(self, alert_ids: Sequence[str]) -> list[AlertState | None]:
        if not alert_ids:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for aid in alert_ids:
            pipe.hmget(self.keys.alert(aid), list(FIELDS))
            pipe.zrange(self.keys.cams(aid), 0, -1)
        replies = await pipe.execute()
        out: list[AlertState | None] = []
        for i in range(len(alert_ids)):
            values, cams = replies[2 * i], replies[2 * i + 1]
            out.append(None if values[0] is None else AlertState.from_values(values, cams))
        return out

    async def list(
        self, deployment_id: str, limit: int = 100, status: str | None = None, before_ms: int | None = None
    ) -> list[AlertState]:
        """Newest first by last_seen. Index entries whose record expired are removed on the way."""
        index = self.keys.index(deployment_id)
        top = "+inf" if before_ms is None else f"({before_ms}"
        out: list[AlertState] = []
        offset = 0
        page = max(limit, 50)
        while len(out) < limit:
            ids = _ids(await self.redis.zrevrangebyscore(index, top, "-inf", start=offset, num=page))
            if not ids:
                break
            offset += len(ids)
            states = await self.get_many(ids)
            stale = [aid for aid, st in zip(ids, states, strict=True) if st is None]
            if stale:
                await self.redis.zrem(index, *stale)
                offset -= len(stale)
            for st in states:
                if st is not None and (status is None or st.status == status):
                    out.append(st)
                    if len(out) >= limit:
                        break
        return out

    async def probe(self, alert_id: str) -> tuple[EncryptedBlob, str, str] | None:
        """The best probe chip, still sealed, with the crop id and deployment id its AAD needs."""
        blob, crop_id, deployment_id = await self.redis.hmget(
            self.keys.alert(alert_id), ["probe", "probe_crop_id", "deployment_id"]
        )
        if not blob:
            return None
        try:
            sealed = decode(EncryptedBlob, blob if isinstance(blob, bytes) else str(blob).encode())
        except SerdeError:
            log.warning("alert %s holds an unreadable probe blob", alert_id)
            return None
        return sealed, text(crop_id), text(deployment_id)

    async def stage_mark_published(self, pipe: Pipeline, states: Sequence[AlertState]) -> None:
        """Queue the produced-marks (and first-time counts) on a caller's transaction."""
        for st in states:
            total, minute = stats_keys(self.settings, st.deployment_id)
            await self._mark(
                keys=[self.keys.alert(st.alert_id), total, minute],
                args=[
                    st.revision,
                    stats.MINUTE_TTL_S,
                    stats.ALERTS,
                    category_counter(stats.ALERTS, st.category),
                ],
                client=pipe,
            )

    async def adjudicate(
        self, alert_id: str, outcome: Outcome, officer: str, note: str, at_ms: int | None = None
    ) -> tuple[AlertState, bool]:
        """Record a decision once; returns the record and whether this call recorded it.

        Repeating the same decision is allowed (the caller then completes any publishing step a failure
        interrupted); a different decision on a decided alert raises AlreadyAdjudicated.
        """
        reply = await self._adjudicate(
            keys=[self.keys.alert(alert_id), self.keys.cams(alert_id)],
            args=[
                OUTCOME_STATUS[outcome].value,
                outcome.value,
                officer,
                note,
                at_ms or now_ms(),
                adjudication_id(alert_id),
            ],
        )
        code = int(reply[0])
        if code == -1:
            raise AlertNotFound(alert_id)
        state = parse_state_reply(reply)
        if code == 3:
            raise AlreadyAdjudicated(state)
        return state, code == 1

    async def add_adjudication_step(self, state: AlertState, step: str, counters: Sequence[str] = ()) -> None:
        """Mark a publishing step of the decision done; ``counters`` are added once, with the mark."""
        total, minute = stats_keys(self.settings, state.deployment_id)
        await self._add_step(
            keys=[self.keys.alert(state.alert_id), total, minute],
            args=[step, stats.MINUTE_TTL_S, *counters],
        )

    async def count(self, deployment_id: str) -> int:
        return int(await self.redis.zcard(self.keys.index(deployment_id)))

    async def purge(self, deployment_id: str, batch: int = 500) -> int:
        """Delete every alert record and probe crop of a deployment; returns how many alerts were deleted.

        The tombstone is written first, so hits still in flight (or replayed later from lfr.hits.v1, which
        keeps hits as long as alerts are retained) cannot recreate what is being deleted.
        """
        await self.redis.set(self.keys.tombstone(deployment_id), now_ms(), ex=self.retention_s + DAY_S)
        index = self.keys.index(deployment_id)
        deleted = 0
        while True:
            ids = _ids(await self.redis.zrange(index, 0, batch - 1))
            if not ids:
                break
            pipe = self.redis.pipeline(transaction=True)
            for aid in ids:
                pipe.delete(*self.keys.all_for(aid))
            pipe.zrem(index, *ids)
            replies = await pipe.execute()
            deleted += sum(1 for r in replies[:-1] if int(r) > 0)
        await self.redis.delete(index)
        log.info("purged %d alerts of deployment %s", deleted, deployment_id)
        return deleted
