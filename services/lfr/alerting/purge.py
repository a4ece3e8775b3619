"""The alert purge behind ``lfr deployment stop --purge`` and the API's stop-and-purge, handed to the
watchlist services by their composition roots (lfr.admin.cli, lfr.api.context).

Destroys the deployment's alert-retention key first, which makes every probe crop of the deployment unreadable
wherever a copy lives (hits still on ``lfr.hits.v1``, broker and Redis backups), then deletes its alert
records, probe crops, dedupe state and pending webhook deliveries and leaves a tombstone so hits still in
flight cannot recreate them. Statistics counters are kept: they are
counts, not personal data, and the transparency report needs them after the purge.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis

from lfr.alerting.store import AlertStore
from lfr.alerting.webhooks import Outbox
from lfr.core.config import Settings
from lfr.core.crypto import DeploymentAlertKeys


async def purge_deployment(settings: Settings, redis: aioredis.Redis, deployment_id: str) -> int:
    """Returns how many alerts were deleted."""
    await DeploymentAlertKeys(settings, redis).destroy(deployment_id)
    deleted = await AlertStore(settings, redis).purge(deployment_id)
    await Outbox(settings, redis).purge_deployment(deployment_id)
    return deleted


def make_purge_alerts(settings: Settings, redis: aioredis.Redis) -> Callable[[str], Awaitable[int]]:
    async def purge(deployment_id: str) -> int:
        return await purge_deployment(settings, redis, deployment_id)

    return purge
