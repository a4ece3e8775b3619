"""The API's composition root: every part a route uses, built once per process in the lifespan and closed
with it.

Each part is a typed field, so a route asks for what it needs by name and a test replaces a part by
assigning the field. Parts that cost seconds to build (the face models behind retrospective search and
redaction) or that write on first use (the alert keyring) are :class:`Lazy`: built on first use, once,
even when the first requests arrive together.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Generic, TypeVar

import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer
from fastapi import Depends, Request

from lfr.alerting.adjudication import Adjudicator
from lfr.alerting.purge import make_purge_alerts
from lfr.alerting.store import AlertStore
from lfr.alerting.stream import AlertHub
from lfr.core.audit import AuditLog
from lfr.core.bus import make_producer
from lfr.core.config import Settings
from lfr.core.crypto import DeploymentAlertKeys
from lfr.core.milvus import MilvusConnection
from lfr.core.redis_client import make_redis
from lfr.ingest.registry import CameraRegistry
from lfr.retro.cases import CaseStore
from lfr.watchlist.audit_trail import AuditTrail
from lfr.watchlist.card_stores import CardStores
from lfr.watchlist.compose import build_services
from lfr.watchlist.deployment_service import DeploymentService
from lfr.watchlist.errors import SubjectNotFound
from lfr.watchlist.subjects import SubjectService

if TYPE_CHECKING:
    from lfr.redact.jobs import JobRegistry
    from lfr.retro.search import RetroSearcher

T = TypeVar("T")

# (subject_id, watchlist_id) -> the subject's record (at least ``thumbnail``, base64 JPEG, and
# ``display_name``), or None when the subject is gone. The alert routes show officers the watchlist image.
SubjectLookup = Callable[[str, str], Awaitable[dict[str, Any] | None]]


class Lazy(Generic[T]):
    """A part built by ``build`` on first :meth:`get`, once, however many requests ask at the same time."""

    def __init__(self, build: Callable[[], Awaitable[T]]) -> None:
        self._build = build
        self._value: T | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> T:
        if self._value is None:
            async with self._lock:
                if self._value is None:
                    self._value = await self._build()
        return self._value

    def set(self, value: T) -> None:
        """Use ``value`` instead of building one (tests hand in a part built their way)."""
        self._value = value

    @property
    def built(self) -> T | None:
        return self._value


def watchlist_lookup(subjects: SubjectService) -> SubjectLookup:
    """The subject lookup answered by this process's watchlist store (Milvus)."""

    async def lookup(subject_id: str, watchlist_id: str) -> dict[str, Any] | None:
        try:
            record = await subjects.get_subject(watchlist_id, subject_id)
        except SubjectNotFound:
            return None
        return record.model_dump()

    return lookup


@dataclass
class ApiContext:
    settings: Settings
    redis: aioredis.Redis
    producer: AIOKafkaProducer
    audit: AuditLog
    milvus: MilvusConnection
    watchlist_stores: CardStores
    subjects: SubjectService
    deployments: DeploymentService
    audit_trail: AuditTrail
    subject_lookup: SubjectLookup
    alerts: AlertStore
    alert_hub: AlertHub
    adjudicator: Adjudicator
    cases: CaseStore
    cameras: CameraRegistry
    probe_keys: Lazy[DeploymentAlertKeys] = field(init=False)
    retro: Lazy[RetroSearcher] = field(init=False)
    redaction: Lazy[JobRegistry] = field(init=False)

    def __post_init__(self) -> None:
        self.probe_keys = Lazy(self._probe_keys)
        self.retro = Lazy(self._retro_searcher)
        self.redaction = Lazy(self._redaction_jobs)

    @classmethod
    async def start(cls, settings: Settings) -> ApiContext:
        redis = make_redis(settings)
        producer = make_producer(settings, "api")
        await producer.start()
        audit = AuditLog(settings, producer, redis)
        milvus = MilvusConnection(settings)
        wl = build_services(
            settings, redis, audit, purge_alerts=make_purge_alerts(settings, redis), milvus=milvus
        )
        alerts = AlertStore(settings, redis)
        return cls(
            settings=settings,
            redis=redis,
            producer=producer,
            audit=audit,
            milvus=milvus,
            watchlist_stores=wl.stores,
            subjects=wl.subjects,
            deployments=wl.deployments,
            audit_trail=wl.audit_trail,
            subject_lookup=watchlist_lookup(wl.subjects),
            alerts=alerts,
            alert_hub=AlertHub(settings, redis),
            adjudicator=Adjudicator(alerts, settings, redis, lambda: producer, audit),
            cases=CaseStore(settings, redis),
            cameras=CameraRegistry(settings, redis),
        )

    async def _probe_keys(self) -> DeploymentAlertKeys:
        return DeploymentAlertKeys(self.settings, self.redis)

    async def _retro_searcher(self) -> RetroSearcher:
        """The face models load in a worker thread, not on the event loop serving the live alert streams."""
        from lfr.retro.search import RetroSearcher
        from lfr.vision import FaceAnalyzer

        analyzer = await asyncio.to_thread(FaceAnalyzer, self.settings)
        return RetroSearcher(self.settings, analyzer, self.audit, self.cases, milvus=self.milvus)

    async def _redaction_jobs(self) -> JobRegistry:
        from lfr.redact.engine import FaceFinder
        from lfr.redact.jobs import JobRegistry
        from lfr.redact.service import Redactor

        finder = await asyncio.to_thread(FaceFinder, self.settings)
        return JobRegistry(Redactor(self.settings, self.audit, finder=finder))

    async def close(self) -> None:
        await self.alert_hub.aclose()
        if (searcher := self.retro.built) is not None:
            await asyncio.to_thread(searcher.close)
        if (jobs := self.redaction.built) is not None:
            await jobs.aclose()
        await self.watchlist_stores.aclose()
        await asyncio.to_thread(self.milvus.close)
        await self.producer.stop()
        await self.redis.aclose()


def get_ctx(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx


Ctx = Annotated[ApiContext, Depends(get_ctx)]
