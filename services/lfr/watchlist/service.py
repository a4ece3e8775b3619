"""The one services layer behind both the watchlist API routes and the `lfr watchlist|deployment|audit` CLI.

Why a layer: the API and the CLI must apply the same rules (enrolment checks, threshold governance,
audit of every change), so each operation exists once, here, as an async method, and the two front ends
only parse input and print or serialise output. Milvus and model calls are synchronous libraries: they run
in worker threads so the API's event loop keeps serving.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis

from lfr.core.audit import GENESIS, AuditLog, VerifyReport, read_all, verify_events
from lfr.core.config import Settings
from lfr.core.redis_client import key as rkey
from lfr.core.redis_client import text
from lfr.v1.audit_pb2 import AuditEvent
from lfr.watchlist.deployments import (
    AuditUnavailable,
    Deployment,
    DeploymentNotFound,
    DeploymentSpec,
    DeploymentStatus,
    DeploymentStore,
    GovernanceError,
    PurgeAlerts,
    ThresholdCard,
    TransitionError,
    effective_threshold,
    is_live,
)
from lfr.watchlist.enrol import Enroller, EnrolmentRejected, FaceEnroller, ImportSummary, RejectCode
from lfr.watchlist.expected_rate import ExpectedRate, expected_rate, threshold_for_target
from lfr.watchlist.schemas import AuditCheckOut, AuditEventOut, DeploymentOut, ExpectedRateOut
from lfr.watchlist.store import StoreError, SubjectMeta, SubjectRecord, WatchlistStore
from lfr.watchlist.types import now_s, validate_id

if TYPE_CHECKING:
    from lfr.api.context import ApiContext
    from lfr.vision.cards import ModelCard

log = logging.getLogger(__name__)

EXTRAS_KEY = "watchlist"
PURGE_HOOK_KEY = "purge_alerts"


class SubjectNotFound(LookupError):
    pass


def default_purge_hook(settings: Settings, redis: aioredis.Redis) -> PurgeAlerts | None:
    """The alerting service's purge function when installed.

    Contract for lfr.alerting: ``lfr.alerting.purge.make_purge_alerts(settings, redis)`` returns a callable
    ``purge(deployment_id) -> int`` (sync or async) that deletes every alert, probe image and dedupe key of
    the deployment and returns how many alerts it deleted.
    """
    try:
        from lfr.alerting.purge import make_purge_alerts  # type: ignore[import-not-found]
    except ImportError:
        return None
    hook: PurgeAlerts = make_purge_alerts(settings, redis)
    return hook


class WatchlistService:
    """Watchlists, deployments and audit reading for one process; cheap to build, clients made lazily."""

    def __init__(
        self,
        settings: Settings,
        redis: aioredis.Redis,
        audit: AuditLog,
        *,
        card: ModelCard | None = None,
        store: WatchlistStore | None = None,
        analyzer: FaceEnroller | None = None,
        purge_alerts: PurgeAlerts | None = None,
    ) -> None:
        self.settings = settings
        self.redis = redis
        self.audit = audit
        self.purge_alerts = purge_alerts
        self._cards: dict[str, ModelCard] = {}
        self._stores: dict[str, WatchlistStore] = {}
        if card is not None:
            self._cards[card.name] = card
        if store is not None:
            self._stores[store.card.name] = store
        self._analyzer = analyzer
        self._enroller: Enroller | None = None
        self.deployments = DeploymentStore(settings, redis, audit)

    # ---- parts ----------------------------------------------------------------------------------------

    def card_for(self, name: str | None = None) -> ModelCard:
        """The embedder card (default: settings.models.embedder); CardError says how to build it if absent."""
        model = name or self.settings.models.embedder
        if model not in self._cards:
            from lfr.vision.cards import find_card

            card = find_card(self.settings.models_dir, model)
            if card.kind != "embedder":
                raise GovernanceError(f"model {model} is a {card.kind}, not an embedder")
            self._cards[model] = card
        return self._cards[model]

    @property
    def card(self) -> ModelCard:
        return self.card_for(None)

    def store_for(self, name: str | None = None) -> WatchlistStore:
        card = self.card_for(name)
        if card.name not in self._stores:
            self._stores[card.name] = WatchlistStore(self.settings, card)
        return self._stores[card.name]

    @property
    def store(self) -> WatchlistStore:
        return self.store_for(None)

    @property
    def enroller(self) -> Enroller:
        if self._enroller is None:
            self._enroller = Enroller(self.settings, self.store, self.audit, self._analyzer)
        return self._enroller

    async def aclose(self) -> None:
        for store in self._stores.values():
            await asyncio.to_thread(store.close)
        self._stores.clear()

    # ---- watchlists -----------------------------------------------------------------------------------

    async def enrol(self, meta: SubjectMeta, image: bytes, actor: str, reason: str = "") -> SubjectRecord:
        return await self.enroller.enrol(meta, image, actor, reason)

    async def import_subjects(
        self,
        source: Path,
        watchlist_id: str,
        actor: str,
        defaults: dict[str, Any] | None = None,
        reason: str = "",
        progress: bool = True,
    ) -> ImportSummary:
        validate_id(watchlist_id, "watchlist_id")
        return await self.enroller.bulk_import(source, watchlist_id, actor, defaults, reason, progress)

    async def watchlists(self) -> dict[str, int]:
        return await asyncio.to_thread(self.store.watchlists)

    async def list_subjects(self, watchlist_id: str, thumbnails: bool = False) -> list[SubjectRecord]:
        return await asyncio.to_thread(self.store.list_subjects, watchlist_id, thumbnails)

    async def get_subject(self, watchlist_id: str, subject_id: str) -> SubjectRecord:
        rec = await asyncio.to_thread(self.store.get_subject, watchlist_id, subject_id)
        if rec is None:
            raise SubjectNotFound(f"no subject {subject_id} on watchlist {watchlist_id}")
        return rec

    async def update_subject(
        self, watchlist_id: str, subject_id: str, changes: dict[str, Any], actor: str, reason: str = ""
    ) -> SubjectRecord:
        """Change a subject's metadata; the audit names the fields changed, never their values."""
        changes = {k: v for k, v in changes.items() if v is not None}
        if not changes:
            raise ValueError(
                "nothing to change: give at least one of category, display_name, source, "
                "image_date, expires_at"
            )
        before = await self.get_subject(watchlist_id, subject_id)
        rec = await asyncio.to_thread(self.store.update_subject, watchlist_id, subject_id, **changes)
        if rec is None:
            raise SubjectNotFound(f"no subject {subject_id} on watchlist {watchlist_id}")
        try:
            await self.audit.append(
                actor,
                "watchlist.update",
                f"{watchlist_id}/{subject_id}",
                reason,
                {
                    "watchlist_id": watchlist_id,
                    "subject_id": subject_id,
                    "fields": ",".join(sorted(changes)),
                    "expires_at": str(rec.expires_at),
                    "category": str(rec.category),
                },
            )
        except Exception as exc:
            restore = {k: getattr(before, k) for k in changes}
            await asyncio.to_thread(self.store.update_subject, watchlist_id, subject_id, **restore)
            raise AuditUnavailable(
                f"update of {subject_id} rolled back: audit log unavailable ({exc})"
            ) from exc
        return rec

    async def delete_subject(self, watchlist_id: str, subject_id: str, actor: str, reason: str = "") -> int:
        """Delete every image of a subject; searches stop finding it before this returns."""
        n = await asyncio.to_thread(self.store.delete_subject, watchlist_id, subject_id)
        if n == 0:
            raise SubjectNotFound(f"no subject {subject_id} on watchlist {watchlist_id}")
        await self._audit_or_log(
            actor,
            "watchlist.delete",
            f"{watchlist_id}/{subject_id}",
            reason,
            {
                "watchlist_id": watchlist_id,
                "subject_id": subject_id,
                "images_deleted": str(n),
            },
        )
        return n

    async def sweep(self, actor: str, now: int | None = None) -> int:
        """Delete expired entries (retention); audited even when nothing expired, as evidence it ran."""
        t = now_s() if now is None else int(now)
        n = await asyncio.to_thread(self.store.sweep_expired, t)
        await self._audit_or_log(
            actor,
            "watchlist.sweep",
            self.store.collection,
            "",
            {
                "rows_deleted": str(n),
                "cutoff": str(t),
            },
        )
        log.info("watchlist sweep deleted %d expired images", n)
        return n

    async def _audit_or_log(
        self, actor: str, action: str, target: str, reason: str, details: dict[str, str]
    ) -> None:
        """For deletions, which cannot be undone: the data is gone either way, so say so loudly."""
        try:
            await self.audit.append(actor, action, target, reason, details)
        except Exception as exc:
            log.error("%s on %s done but NOT audited (%s): %s", action, target, type(exc).__name__, details)
            raise AuditUnavailable(
                f"{action} on {target} was carried out but the audit record could not be "
                f"written ({type(exc).__name__}); the error log holds its details"
            ) from exc

    # ---- deployments ----------------------------------------------------------------------------------

    async def expected_rate(self, dep: Deployment | DeploymentSpec, card: ThresholdCard) -> ExpectedRate:
        """The false-alert rate for the deployment's watchlists as they stand now."""
        store = self.store_for(card.name)
        size = await asyncio.to_thread(store.count, list(dep.watchlist_ids), None)
        return expected_rate(self.card_for(card.name), dep.threshold, size)

    async def describe(self, dep: Deployment, with_rate: bool = True) -> DeploymentOut:
        card = self.card_for(dep.embedder_model)
        rate = None
        if with_rate:
            try:
                rate = ExpectedRateOut.of(await self.expected_rate(dep, card))
            except StoreError as exc:
                log.warning("expected rate unavailable for %s: %s", dep.deployment_id, exc)
        assert card.metric is not None and card.threshold is not None and card.threshold_floor is not None
        return DeploymentOut(
            **dep.model_dump(),
            live=is_live(dep),
            metric=card.metric,
            card_threshold=card.threshold,
            card_threshold_floor=card.threshold_floor,
            effective_threshold=effective_threshold(dep, card),
            expected_rate=rate,
        )

    async def create_deployment(self, spec: DeploymentSpec, actor: str) -> DeploymentOut:
        card = self.card_for(spec.embedder_model)
        dep = await self.deployments.create(spec, actor, card)
        dep = await self._size_rule(dep, card, actor)
        return await self.describe(dep)

    async def _size_rule(self, dep: Deployment, card: ModelCard, actor: str) -> Deployment:
        """Give a deployment without an explicit threshold the one its watchlist size needs (audited).

        Applied at creation and again at authorisation (the watchlists may have grown in between); a
        threshold set by a person (threshold_source "explicit") is never replaced.
        """
        g = self.settings.governance
        if not g.size_rule or dep.threshold_source == "explicit" or dep.status != DeploymentStatus.DRAFT:
            return dep
        size = await asyncio.to_thread(self.store_for(card.name).count, list(dep.watchlist_ids), None)
        choice = threshold_for_target(card, g.target_fpir, size)
        if dep.threshold == choice.threshold and dep.threshold_source == "size_rule":
            return dep
        return await self.deployments.set_threshold(
            dep.deployment_id, choice.threshold, choice.reason, actor, card, source="size_rule"
        )

    async def get_deployment(self, deployment_id: str) -> DeploymentOut:
        return await self.describe(await self.deployments.require(deployment_id))

    async def list_deployments(self) -> list[DeploymentOut]:
        return [await self.describe(d, with_rate=False) for d in await self.deployments.list()]

    async def authorise(self, deployment_id: str, officer: str, actor: str) -> DeploymentOut:
        dep = await self.deployments.require(deployment_id)
        await self._size_rule(dep, self.card_for(dep.embedder_model), actor)
        return await self.describe(await self.deployments.authorise(deployment_id, officer, actor))

    async def refuse(self, deployment_id: str, officer: str, reason: str) -> DeploymentOut:
        return await self.describe(await self.deployments.refuse(deployment_id, officer, reason))

    async def publish(self, deployment_id: str, officer: str, published: bool) -> DeploymentOut:
        dep = await self.deployments.publish(deployment_id, officer, published)
        return await self.describe(dep, with_rate=False)

    async def start(self, deployment_id: str, actor: str) -> DeploymentOut:
        return await self.describe(await self.deployments.start(deployment_id, actor), with_rate=False)

    async def stop(
        self, deployment_id: str, actor: str, purge: bool = False, reason: str = ""
    ) -> DeploymentOut:
        dep = await self.deployments.stop(deployment_id, actor, purge, self.purge_alerts, reason)
        return await self.describe(dep, with_rate=False)

    async def set_threshold(
        self, deployment_id: str, threshold: float | None, reason: str, actor: str
    ) -> DeploymentOut:
        dep = await self.deployments.require(deployment_id)
        card = self.card_for(dep.embedder_model)
        return await self.describe(
            await self.deployments.set_threshold(deployment_id, threshold, reason, actor, card)
        )

    # ---- audit ----------------------------------------------------------------------------------------

    async def _head(self) -> tuple[int | None, str | None]:
        head = await self.redis.hgetall(rkey(self.settings, "audit", "head"))
        seq = head.get(b"seq")
        h = head.get(b"hash")
        return (int(seq) if seq else None), (text(h) or None)

    async def verify_audit(self) -> AuditCheckOut:
        events = await read_all(self.settings)
        head_seq, head_hash = await self._head()
        return check_chain(events, head_seq, head_hash)

    async def audit_events(self, limit: int = 50) -> list[AuditEventOut]:
        events = await read_all(self.settings)
        _, head_hash = await self._head()
        chains = sum(1 for e in events if e.prev_hash == GENESIS)
        if chains > 1 and head_hash:
            events = own_chain(events, head_hash)
        return [AuditEventOut.of(e) for e in events[-max(1, limit) :]]


# ---- audit chain helpers -----------------------------------------------------------------------------------


def own_chain(events: Sequence[AuditEvent], head_hash: str) -> list[AuditEvent]:
    """The records linked back from ``head_hash`` by prev_hash, oldest first (stops at a break)."""
    by_hash: dict[str, AuditEvent] = {}
    for e in events:
        by_hash.setdefault(e.hash, e)
    chain: list[AuditEvent] = []
    seen: set[str] = set()
    h = head_hash
    while h != GENESIS and h in by_hash and h not in seen:
        seen.add(h)
        ev = by_hash[h]
        chain.append(ev)
        h = ev.prev_hash
    chain.reverse()
    return chain


def check_chain(events: Sequence[AuditEvent], head_seq: int | None, head_hash: str | None) -> AuditCheckOut:
    """Verify the audit topic; where it carries several chains, verify this installation's.

    Several LFR installations (or test runs) with different Redis key prefixes can share one broker: each
    keeps its own chain head, so the topic interleaves chains. The whole topic is verified first; only when
    that fails *and* the topic holds more than one chain start is the chain ending at this installation's
    head verified instead, and the records of other chains are counted, not silently dropped.
    """
    report = verify_events(events, head_seq)
    starts = sum(1 for e in events if e.seq == 1 and e.prev_hash == GENESIS)
    if report.ok or starts <= 1 or not head_hash:
        return _check_out(report, "whole audit topic", 0)
    chain = own_chain(events, head_hash)
    other = len(events) - len(chain)
    scope = "the chain ending at this installation's head (the topic holds several chains)"
    if not chain:
        return AuditCheckOut(
            ok=False,
            records=0,
            first_bad_seq=head_seq,
            scope=scope,
            other_records=other,
            problem=f"record {head_seq} (this installation's head) is not on the audit topic",
        )
    if chain[0].seq != 1:
        gap = chain[0].seq - 1
        return AuditCheckOut(
            ok=False,
            records=len(chain),
            first_bad_seq=gap,
            scope=scope,
            other_records=other,
            problem=f"record {gap} is missing or was altered: record {gap + 1} follows no "
            "record on the topic",
        )
    return _check_out(verify_events(chain, head_seq), scope, other)


def _check_out(report: VerifyReport, scope: str, other: int) -> AuditCheckOut:
    return AuditCheckOut(
        ok=report.ok,
        records=report.records,
        first_bad_seq=report.first_bad_seq,
        problem=report.problem,
        scope=scope,
        other_records=other,
    )


# ---- composition for the two front ends --------------------------------------------------------------------


def get_service(ctx: ApiContext) -> WatchlistService:
    """The API's WatchlistService, built once per process into ctx.extras (closed by ApiContext.close)."""
    svc = ctx.extras.get(EXTRAS_KEY)
    if svc is None:
        hook = ctx.extras.get(PURGE_HOOK_KEY) or default_purge_hook(ctx.settings, ctx.redis)
        svc = WatchlistService(ctx.settings, ctx.redis, ctx.audit, purge_alerts=hook)
        ctx.extras[EXTRAS_KEY] = svc
    assert isinstance(svc, WatchlistService)
    return svc


@asynccontextmanager
async def open_service(
    settings: Settings, purge_alerts: PurgeAlerts | None = None, analyzer: FaceEnroller | None = None
) -> AsyncIterator[WatchlistService]:
    """A WatchlistService with its own Redis client and Kafka producer (the CLI's composition root)."""
    from lfr.core.bus import make_producer
    from lfr.core.redis_client import make_redis

    redis = make_redis(settings)
    producer = make_producer(settings, "watchlist-cli")
    await producer.start()
    try:
        hook = purge_alerts or default_purge_hook(settings, redis)
        svc = WatchlistService(
            settings, redis, AuditLog(settings, producer, redis), purge_alerts=hook, analyzer=analyzer
        )
        try:
            yield svc
        finally:
            await svc.aclose()
    finally:
        await producer.stop()
        await redis.aclose()


@dataclass(frozen=True)
class ErrorStatus:
    status: int
    detail: str
    code: str | None = None


def error_status(exc: BaseException) -> ErrorStatus | None:
    """HTTP status for a domain error (the API) — the CLI prints the same message and exits non-zero."""
    from aiokafka.errors import KafkaError
    from pymilvus.exceptions import MilvusException
    from redis.exceptions import RedisError

    from lfr.vision.cards import CardError

    if isinstance(exc, EnrolmentRejected):
        return ErrorStatus(413 if exc.code == RejectCode.OVERSIZED else 422, str(exc), str(exc.code))
    if isinstance(exc, SubjectNotFound | DeploymentNotFound):
        return ErrorStatus(404, str(exc.args[0]) if exc.args else "not found")
    if isinstance(exc, TransitionError):
        return ErrorStatus(409, str(exc))
    unavailable = (
        AuditUnavailable,
        StoreError,
        CardError,
        RedisError,
        KafkaError,
        MilvusException,
        TimeoutError,
        OSError,
    )
    if isinstance(exc, unavailable):
        return ErrorStatus(503, str(exc))
    if isinstance(exc, ValueError):
        return ErrorStatus(422, str(exc))
    return None


async def start_deployment_now(
    svc: WatchlistService,
    name: str,
    purpose: str,
    watchlist_ids: list[str],
    actor: str,
    officer: str,
    hours: float = 4.0,
) -> str:
    """Create a deployment whose window opens now, have ``officer`` authorise it, and start it.

    For the demo and benchmarks, which need a live deployment in one step; each step is still the audited
    governance path (the officer must differ from the creator, as for any deployment).
    """
    now = datetime.now(UTC)
    dep = await svc.create_deployment(
        DeploymentSpec(
            name=name,
            location=name,
            purpose=purpose,
            starts_at=now - timedelta(minutes=1),
            ends_at=now + timedelta(hours=hours),
            authorising_officer=officer,
            watchlist_ids=watchlist_ids,
        ),
        actor,
    )
    await svc.authorise(dep.deployment_id, officer, officer)
    await svc.start(dep.deployment_id, actor)
    return dep.deployment_id
