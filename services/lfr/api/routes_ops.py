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

Each API replica gathers it at most every two seconds, however many consoles poll.

Counts, rates, ids and TTLs only: nothing biometric, so the operations role needs no clearance for faces.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, Request

from lfr.api.auth import Principal, require
from lfr.api.context import ApiContext, get_ctx
from lfr.core.redis_client import make_keystore_redis
from lfr.monitor.schema import OpsStatus
from lfr.monitor.status import collect

router = APIRouter(prefix="/api/v1/ops", tags=["operations"])

# Consoles poll this page: one status per replica every CACHE_S at most, whatever the number of viewers,
# keeps the broker from answering the same offset and group requests for each of them.
CACHE_S = 2.0

Operations = Annotated[Principal, Depends(require("operations"))]
Ctx = Annotated[ApiContext, Depends(get_ctx)]


@router.get(
    "/status",
    response_model=OpsStatus,
    summary="Lag per group and partition, members, throughput, camera health, key TTLs, stack parts",
)
async def ops_status(who: Operations, ctx: Ctx, request: Request) -> OpsStatus:
    cached: tuple[float, OpsStatus] | None = getattr(request.app.state, "ops_status", None)
    if cached is not None and time.monotonic() - cached[0] < CACHE_S:
        return cached[1]
    settings = ctx.settings
    if settings.keystore_redis_url == settings.redis_url:
        status = await collect(settings, ctx.redis, ctx.redis)
    else:
        keystore = make_keystore_redis(settings)
        try:
            status = await collect(settings, ctx.redis, keystore)
        finally:
            await keystore.aclose()
    request.app.state.ops_status = (time.monotonic(), status)
    return status
