"""Operations routes: the status document behind the console's operations page (role ``operations``).

The document's shape is ``lfr.monitor.schema.OpsStatus`` (also printed by ``lfr status --json``):

- ``generated_at``, ``healthy``;
- ``stack``: kafka, redis, keystore, milvus, each ``reachable`` with the address checked;
- ``groups``: per consumer group its ``role`` (embedder, alerting, monitor, other), ``state``, ``members``,
  total ``lag`` and ``partitions`` (topic, partition, committed, end, lag);
- ``throughput``: per topic the records written in all (``end_offset_total``) and ``records_per_s`` since
  the previous call by anyone (null on the first);
- ``cameras``: per camera ``health`` (ok, silent, disconnected, no report), the ingest replica's figures
  (state, fps, last frame age, reconnects) and the monitor's ``last_minute`` (frames, analysed, faces,
  crops);
- ``deployments``: alerts in the last minute, the baseline per minute, ``alert_rate_jump``, adjudication
  ``outcomes``;
- ``keys``: crop keys alive and their TTLs (``crop_keys_visible`` false where this process has no crop
  key store configured, as the chart's api), alert keys per deployment and their TTLs (never key material);
- ``events``: the monitor's latest operations events (camera_silent, camera_recovered, alert_rate_jump,
  alert_rate_normal), newest first;
- ``monitor``: whether the monitor stage is running.

Counts, rates, ids and TTLs only: nothing biometric, so the operations role needs no clearance for faces.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from lfr.api.auth import Principal, require
from lfr.api.context import ApiContext, get_ctx
from lfr.core.redis_client import make_keystore_redis
from lfr.monitor.schema import OpsStatus
from lfr.monitor.status import collect

router = APIRouter(prefix="/api/v1/ops", tags=["operations"])

Operations = Annotated[Principal, Depends(require("operations"))]
Ctx = Annotated[ApiContext, Depends(get_ctx)]


@router.get(
    "/status",
    response_model=OpsStatus,
    summary="Lag per group and partition, members, throughput, camera health, key TTLs, stack parts",
)
async def ops_status(who: Operations, ctx: Ctx) -> OpsStatus:
    settings = ctx.settings
    if settings.keystore_redis_url == settings.redis_url:
        return await collect(settings, ctx.redis, ctx.redis)
    keystore = make_keystore_redis(settings)
    try:
        return await collect(settings, ctx.redis, keystore)
    finally:
        await keystore.aclose()
