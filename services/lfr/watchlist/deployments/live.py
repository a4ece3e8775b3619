"""The embedder's and ingest's view of deployments: a short-lived cache answering "is it live, and with
which watchlists and threshold?" per crop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from lfr.watchlist.deployments.model import Deployment, ThresholdCard
from lfr.watchlist.deployments.rules import effective_threshold, is_live
from lfr.watchlist.deployments.store import DeploymentStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LiveDeployment:
    """What the embedder needs per crop (matches lfr.embedder.handler.DeploymentLookup's result)."""

    deployment_id: str
    watchlist_ids: tuple[str, ...]
    threshold: float
    embedder_model: str


class LiveDeployments:
    """A per-process cache of deployments with a short TTL, so the embedder can look one up per crop.

    A stop, or a threshold change, reaches every embedder within ``ttl_s``; the end of the time window is
    applied exactly, because liveness is evaluated on every call against the cached record. Misses are
    cached too (a flood of crops for an unknown deployment costs one Redis read per TTL), and concurrent
    lookups of one id share a single Redis read.
    """

    def __init__(
        self,
        store: DeploymentStore,
        ttl_s: float = 2.0,
        card: ThresholdCard | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self.card = card
        self.clock = clock
        self._cache: dict[str, tuple[float, Deployment | None]] = {}
        self._inflight: dict[str, asyncio.Future[Deployment | None]] = {}
        self._warned: set[str] = set()

    async def get(self, deployment_id: str) -> Deployment | None:
        hit = self._cache.get(deployment_id)
        t = self.clock()
        if hit is not None and t - hit[0] < self.ttl_s:
            return hit[1]
        pending = self._inflight.get(deployment_id)
        if pending is not None:
            return await asyncio.shield(pending)
        fut: asyncio.Future[Deployment | None] = asyncio.get_running_loop().create_future()
        self._inflight[deployment_id] = fut
        try:
            try:
                dep = await self.store.get(deployment_id)
            except ValueError:  # an id that is not a valid deployment id can never exist
                dep = None
            self._cache[deployment_id] = (self.clock(), dep)
            fut.set_result(dep)
            return dep
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # mark retrieved: waiters re-raise it, nobody else needs to
            raise
        finally:
            self._inflight.pop(deployment_id, None)

    async def live(self, deployment_id: str, now: datetime | float | None = None) -> LiveDeployment | None:
        """The deployment's search scope and threshold if it is live for this embedder's model, else None."""
        dep = await self.get(deployment_id)
        if dep is None or not is_live(dep, now):
            return None
        if self.card is None:
            raise RuntimeError("LiveDeployments.live needs the embedder's model card")
        if dep.embedder_model != self.card.name:
            if dep.deployment_id not in self._warned:
                self._warned.add(dep.deployment_id)
                log.warning(
                    "deployment %s is set up for model %s but this embedder runs %s: crops refused",
                    dep.deployment_id,
                    dep.embedder_model,
                    self.card.name,
                )
            return None
        return LiveDeployment(
            dep.deployment_id,
            tuple(dep.watchlist_ids),
            effective_threshold(dep, self.card),
            dep.embedder_model,
        )
