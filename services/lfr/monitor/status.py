"""Gathers the operations status: one call, every part answered or marked unreachable.

A part that cannot be reached never fails the whole status (an operator asks exactly when something is
down): its section is empty and its stack entry says why. Throughput compares end offsets with the previous
call's sample kept in Redis, so any number of callers (CLI, API replicas) share one series.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlparse

import redis.asyncio as aioredis
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError
from redis.exceptions import RedisError

from lfr.core import topics
from lfr.core.config import Settings
from lfr.core.redis_client import key as rkey
from lfr.core.redis_client import make_keystore_redis, text
from lfr.ingest.status import read_status, status_key
from lfr.monitor import records
from lfr.monitor.kafka_state import end_offsets, group_status, known_groups
from lfr.monitor.schema import (
    AlertKeyTtl,
    CameraHealth,
    CameraStatus,
    DeploymentFigures,
    GroupStatus,
    KeyTtls,
    MinuteFigures,
    MonitorState,
    OpsEvent,
    OpsStatus,
    StackPart,
    TopicRate,
)

PART_TIMEOUT_S = 8.0
SAMPLE_MAX_AGE_S = 600


def iso_ms(ms: float | int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _error(exc: BaseException) -> str:
    return type(exc).__name__


async def _ping(client: aioredis.Redis) -> str | None:
    try:
        await asyncio.wait_for(client.ping(), PART_TIMEOUT_S)
        return None
    except (RedisError, OSError, TimeoutError) as exc:
        return _error(exc)


async def _tcp(uri: str) -> str | None:
    """Milvus reachability: a TCP connection to its address (a gRPC call would need the client library)."""
    parsed = urlparse(uri if "://" in uri else f"tcp://{uri}")
    if not parsed.hostname:
        return "no address"
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(parsed.hostname, parsed.port or 19530), PART_TIMEOUT_S
        )
        writer.close()
        return None
    except (OSError, TimeoutError) as exc:
        return _error(exc)


def _part(name: Any, address: str, error: str | None) -> StackPart:
    return StackPart(
        name=name, reachable=error is None, detail=address if error is None else f"{address}: {error}"
    )


async def _stack(
    settings: Settings, redis: aioredis.Redis, keystore: aioredis.Redis, kafka_error: str | None
) -> list[StackPart]:
    redis_error, keystore_error, milvus_error = await asyncio.gather(
        _ping(redis), _ping(keystore), _tcp(settings.milvus_uri)
    )
    return [
        _part("kafka", settings.kafka_bootstrap, kafka_error),
        _part("redis", _safe(settings.redis_url), redis_error),
        _part("keystore", _safe(settings.keystore_redis_url), keystore_error),
        _part("milvus", _safe(settings.milvus_uri), milvus_error),
    ]


def _safe(url: str) -> str:
    """The address without credentials."""
    parsed = urlparse(url)
    if not (parsed.password or parsed.username):
        return url
    host = parsed.hostname or ""
    return parsed._replace(netloc=f"{host}:{parsed.port}" if parsed.port else host).geturl()


async def _throughput(
    redis: aioredis.Redis, settings: Settings, offsets: dict[TopicPartition, tuple[int, int]]
) -> list[TopicRate]:
    now_ms = int(time.time() * 1000)
    totals: dict[str, int] = {}
    for tp, (_, end) in offsets.items():
        totals[tp.topic] = totals.get(tp.topic, 0) + end
    previous = await records.read_json(redis, records.sample_key(settings))
    await records.put_doc(
        redis, records.sample_key(settings), {"at_ms": now_ms, "ends": totals}, SAMPLE_MAX_AGE_S
    )
    rates: dict[str, float | None] = {}
    if previous and 1000 <= now_ms - int(previous.get("at_ms", 0)) <= SAMPLE_MAX_AGE_S * 1000:
        dt = (now_ms - int(previous["at_ms"])) / 1000
        before = previous.get("ends", {})
        for name, total in totals.items():
            if name in before:
                rates[name] = round(max(0, total - int(before[name])) / dt, 2)
    return [
        TopicRate(topic=n, end_offset_total=t, records_per_s=rates.get(n)) for n, t in sorted(totals.items())
    ]


async def _camera_ids(settings: Settings, redis: aioredis.Redis) -> dict[str, str]:
    """camera id -> deployment id, from the cameras file, the API's registry and live ingest reports."""
    from lfr.ingest.cameras import CameraConfigError, load_cameras
    from lfr.ingest.registry import CameraRegistry

    out: dict[str, str] = {}
    if settings.ingest.cameras_file:
        try:
            out.update({c.camera_id: c.deployment_id for c in load_cameras(settings)})
        except (CameraConfigError, OSError):
            pass
    out.update({c.camera_id: c.deployment_id for c in await CameraRegistry(settings, redis).list()})
    prefix = status_key(settings, "")
    async for k in redis.scan_iter(match=prefix + "*", count=500):
        out.setdefault(text(k)[len(prefix) :], "")
    return out


def camera_health(report: dict[str, Any] | None, figures: dict[str, Any] | None) -> CameraHealth:
    """ok / silent (no frames: the monitor's verdict) / disconnected (ingest's view) / no report."""
    if figures and figures.get("silent"):
        return "silent"
    if report is None:
        return "no report"
    if not report.get("connected"):
        return "disconnected"
    return "ok"


def _last_minute(figures: dict[str, Any] | None) -> MinuteFigures | None:
    if not figures or not figures.get("last_minute"):
        return None
    m = figures["last_minute"]
    return MinuteFigures(
        minute=iso_ms(int(m["minute_ms"])) or "",
        frames=int(m.get("frames", 0)),
        analysed=int(m.get("analysed", 0)),
        faces=int(m.get("faces", 0)),
        crops=int(m.get("crops", 0)),
    )


async def _cameras(settings: Settings, redis: aioredis.Redis) -> list[CameraStatus]:
    ids = await _camera_ids(settings, redis)
    reports = await read_status(redis, settings, sorted(ids))
    figures = {
        d.get("camera_id"): d for d in await records.read_docs(redis, records.camera_key(settings, ""))
    }
    out = []
    for cid in sorted(set(ids) | {str(k) for k in figures if k}):
        rep, fig = reports.get(cid), figures.get(cid)
        out.append(
            CameraStatus(
                camera_id=cid,
                deployment_id=ids.get(cid)
                or (fig or {}).get("deployment_id", "")
                or (rep or {}).get("deployment_id", ""),
                health=camera_health(rep, fig),
                state=str((rep or {}).get("state", "")),
                connected=bool((rep or {}).get("connected", False)),
                input_fps=(rep or {}).get("input_fps"),
                analysed_fps=(rep or {}).get("analysed_fps"),
                last_frame_age_s=(rep or {}).get("last_frame_age_s"),
                reconnects=int((rep or {}).get("reconnects", 0)),
                replica=(rep or {}).get("replica"),
                last_minute=_last_minute(fig),
                silent_since=iso_ms((fig or {}).get("silent_since_ms")),
            )
        )
    return out


async def _deployments(settings: Settings, redis: aioredis.Redis) -> list[DeploymentFigures]:
    from lfr.watchlist.deployments import DeploymentStore

    figures = {
        d.get("deployment_id"): d
        for d in await records.read_docs(redis, records.deployment_key(settings, ""))
    }
    statuses = {d.deployment_id: str(d.status.value) for d in await DeploymentStore(settings, redis).list()}
    live = {k for k, v in statuses.items() if v == "running"}
    out = []
    for did in sorted({str(k) for k in figures if k} | live):
        fig = figures.get(did) or {}
        out.append(
            DeploymentFigures(
                deployment_id=did,
                status=statuses.get(did, ""),
                alerts_last_minute=int(fig.get("alerts_last_minute", 0)),
                alerts_baseline_per_min=float(fig.get("baseline", 0.0)),
                alert_rate_jump=bool(fig.get("jump", False)),
                outcomes={str(k): int(v) for k, v in (fig.get("outcomes") or {}).items()},
            )
        )
    return out


async def _keys(settings: Settings, redis: aioredis.Redis, keystore: aioredis.Redis) -> KeyTtls:
    crop_prefix = rkey(settings, "cropkey", "")
    crop = [k async for k in keystore.scan_iter(match=crop_prefix + "*", count=500)]
    ttls: list[int] = []
    if crop:
        pipe = keystore.pipeline(transaction=False)
        for k in crop:
            pipe.ttl(k)
        ttls = sorted(int(t) for t in await pipe.execute() if t is not None and t >= 0)
    alert_prefix = rkey(settings, "alertkey", "")
    alert = [text(k) async for k in redis.scan_iter(match=alert_prefix + "*", count=500)]
    alert_ttls: list[Any] = []
    if alert:
        pipe = redis.pipeline(transaction=False)
        for k in alert:
            pipe.ttl(k)
        alert_ttls = await pipe.execute()
    return KeyTtls(
        crop_keys=len(ttls),
        crop_key_ttl_s=ttls,
        alert_keys=[
            AlertKeyTtl(
                deployment_id=k[len(alert_prefix) :], ttl_s=int(t) if t is not None and t >= 0 else None
            )
            for k, t in sorted(zip(alert, alert_ttls, strict=True))
        ],
    )


def _event(doc: dict[str, Any]) -> OpsEvent | None:
    try:
        return OpsEvent(
            kind=doc["kind"],
            subject=str(doc.get("subject", "")),
            at=iso_ms(int(doc["at_ms"])) or "",
            detail={k: v for k, v in (doc.get("detail") or {}).items() if isinstance(v, int | float | str)},
        )
    except (KeyError, ValueError, TypeError):
        return None


async def _monitor(redis: aioredis.Redis, settings: Settings) -> MonitorState:
    doc = await records.read_json(redis, records.heartbeat_key(settings))
    if doc is None:
        return MonitorState(running=False)
    return MonitorState(
        running=True,
        updated_at=iso_ms(doc.get("updated_at_ms")),
        host=str(doc.get("host", "")),
        gaps_filled=int(doc.get("gaps_filled", 0)),
    )


async def _guard(coro: Any, default: Any) -> Any:
    try:
        return await asyncio.wait_for(coro, PART_TIMEOUT_S)
    except (RedisError, KafkaError, OSError, TimeoutError, ValueError):
        return default


async def collect(
    settings: Settings, redis: aioredis.Redis, keystore: aioredis.Redis | None = None
) -> OpsStatus:
    """The whole status; ``keystore`` defaults to a client of the configured crop key store."""
    own_keystore = keystore is None
    ks = make_keystore_redis(settings) if keystore is None else keystore
    try:
        wanted = {t for g in known_groups(settings) for t in g.topics} | {
            s.name for s in topics.topic_specs(settings) if not s.name.endswith("-changelog")
        }
        kafka_error: str | None = None
        offsets: dict[TopicPartition, tuple[int, int]] = {}
        groups: list[GroupStatus] = []
        try:
            offsets = await asyncio.wait_for(end_offsets(settings, wanted), PART_TIMEOUT_S)
            groups = await asyncio.wait_for(group_status(settings, offsets), PART_TIMEOUT_S * 2)
        except (KafkaError, OSError, TimeoutError, ValueError) as exc:
            kafka_error = _error(exc)
        stack = await _stack(settings, redis, ks, kafka_error)
        redis_up = next(p.reachable for p in stack if p.name == "redis")
        keystore_up = next(p.reachable for p in stack if p.name == "keystore")
        throughput = await _guard(_throughput(redis, settings, offsets), []) if redis_up and offsets else []
        cameras = await _guard(_cameras(settings, redis), []) if redis_up else []
        deployments = await _guard(_deployments(settings, redis), []) if redis_up else []
        visible = settings.keystore_redis_url != settings.redis_url
        keys = KeyTtls(crop_keys_visible=visible, crop_keys=0, crop_key_ttl_s=[], alert_keys=[])
        if redis_up and keystore_up:
            keys = await _guard(_keys(settings, redis, ks), keys)
            if not visible:
                keys = keys.model_copy(
                    update={"crop_keys_visible": False, "crop_keys": 0, "crop_key_ttl_s": []}
                )
        events = [e for e in (_event(d) for d in await _guard(records.read_events(redis, settings), [])) if e]
        monitor = (
            await _guard(_monitor(redis, settings), MonitorState(running=False))
            if redis_up
            else MonitorState(running=False)
        )
        healthy = (
            all(p.reachable for p in stack)
            and all(c.health in ("ok",) for c in cameras if c.health != "no report")
            and not any(d.alert_rate_jump for d in deployments)
        )
        return OpsStatus(
            generated_at=iso_ms(time.time() * 1000) or "",
            healthy=healthy,
            stack=stack,
            groups=groups,
            throughput=throughput,
            cameras=cameras,
            deployments=deployments,
            keys=keys,
            events=events,
            monitor=monitor,
        )
    finally:
        if own_keystore:
            await ks.aclose()


def as_json(status: OpsStatus) -> str:
    return json.dumps(status.model_dump(mode="json"), indent=2)
