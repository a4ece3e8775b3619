"""Per-deployment alert-retention keys on the real Redis: shared by processes, wrapped at rest, shredded by a
purge, surviving a master-key rotation; and per-crop counters that a redelivered batch cannot double."""

from __future__ import annotations

import asyncio
import base64
import os

import pytest

from lfr.core import stats
from lfr.core.crypto import DecryptFailed, DeploymentAlertKeys, KeyExpired, probe_aad
from lfr.core.ids import new_id
from lfr.core.redis_client import make_redis

pytestmark = pytest.mark.integration


def _master(key: bytes, key_id: str, **extra: object) -> dict[str, object]:
    return {"crypto": {"alert_key": base64.b64encode(key).decode(), "alert_key_id": key_id, **extra}}


async def test_one_key_per_deployment_shared_wrapped_and_shredded_by_destroy(settings_for) -> None:
    settings = settings_for(**_master(os.urandom(32), "master-v1"))
    redis = make_redis(settings)
    dep, other = f"dep-{new_id()}", f"dep-{new_id()}"
    try:
        embedders = [DeploymentAlertKeys(settings, redis) for _ in range(4)]
        aad = probe_aad("crop-1", dep)
        # Several embedders seal their first probe of the deployment at once: one key wins for all.
        blobs = await asyncio.gather(*(e.seal(dep, b"probe-jpeg", aad) for e in embedders))
        assert len({b.key_id for b in blobs}) == 1
        api = DeploymentAlertKeys(settings, redis, cache_s=0)
        assert all([await api.open(dep, b, aad) == b"probe-jpeg" for b in blobs])
        other_blob = await embedders[0].seal(other, b"other", probe_aad("crop-2", other))
        assert other_blob.key_id != blobs[0].key_id, "each deployment has its own key"
        with pytest.raises(DecryptFailed):
            await api.open(dep, blobs[0], probe_aad("crop-1", other))  # bound to crop and deployment

        stored = await redis.get(api.redis_key(dep))
        assert stored is not None and b"probe" not in stored
        ttl = await redis.ttl(api.redis_key(dep))
        assert (
            (settings.alerting.retention_days) * 86400 < ttl <= (settings.alerting.retention_days + 1) * 86400
        )

        assert await DeploymentAlertKeys(settings, redis).destroy(dep) is True
        with pytest.raises(KeyExpired):
            await api.open(dep, blobs[0], aad)
        # A stray hit after the purge gets a new key; the old probes stay unreadable.
        late = await DeploymentAlertKeys(settings, redis).seal(dep, b"late", aad)
        assert late.key_id != blobs[0].key_id
        with pytest.raises(KeyExpired):
            await api.open(dep, blobs[0], aad)
        assert await api.open(dep, late, aad) == b"late"
        assert await api.open(other, other_blob, probe_aad("crop-2", other)) == b"other", "others untouched"
    finally:
        await redis.delete(
            f"{settings.redis.key_prefix}alertkey:{dep}", f"{settings.redis.key_prefix}alertkey:{other}"
        )
        await redis.aclose()


async def test_master_key_rotation_rewraps_deployment_keys(settings_for) -> None:
    old, new = os.urandom(32), os.urandom(32)
    before = settings_for(**_master(old, "master-v1"))
    prefix = {"redis": {**before.redis.model_dump(), "key_prefix": before.redis.key_prefix}}
    during = settings_for(
        **_master(new, "master-v2", previous_alert_keys={"master-v1": base64.b64encode(old).decode()}),
        **prefix,
    )
    after = settings_for(**_master(new, "master-v2"), **prefix)
    lost = settings_for(**_master(os.urandom(32), "master-v3"), **prefix)
    redis = make_redis(before)
    dep = f"dep-{new_id()}"
    aad = probe_aad("crop-1", dep)
    try:
        blob = await DeploymentAlertKeys(before, redis).seal(dep, b"probe", aad)
        assert await DeploymentAlertKeys(during, redis).open(dep, blob, aad) == b"probe"
        # The retired master key can now be dropped: the deployment key was re-wrapped under the new one.
        assert await DeploymentAlertKeys(after, redis).open(dep, blob, aad) == b"probe"
        with pytest.raises(DecryptFailed, match="retired"):
            await DeploymentAlertKeys(lost, redis).open(dep, blob, aad)
    finally:
        await redis.delete(DeploymentAlertKeys(before, redis).redis_key(dep))
        await redis.aclose()


async def test_per_crop_counters_are_added_once(settings_for) -> None:
    settings = settings_for()
    redis = make_redis(settings)
    dep = f"dep-{new_id()}"
    batch = {
        "crop-a": {stats.FACES_ANALYSED: 1, stats.HITS: 2},
        "crop-b": {stats.FACES_ANALYSED: 1, stats.CROPS_DISCARDED: 1},
    }
    try:
        assert await stats.add_once(redis, settings, dep, "embedder", batch, marker_ttl_ms=60_000) == 2
        # The same batch retried, and a redelivery mixed with a new crop: only the new crop counts.
        assert await stats.add_once(redis, settings, dep, "embedder", batch, marker_ttl_ms=60_000) == 0
        mixed = {"crop-b": batch["crop-b"], "crop-c": {stats.CROPS_EXPIRED: 1}}
        assert await stats.add_once(redis, settings, dep, "embedder", mixed, marker_ttl_ms=60_000) == 1
        assert await stats.totals(redis, settings, dep) == {
            stats.FACES_ANALYSED: 2,
            stats.HITS: 2,
            stats.CROPS_DISCARDED: 1,
            stats.CROPS_EXPIRED: 1,
        }
        minutes = await stats.per_minute(redis, settings, dep, minutes=2)
        assert sum(row.get(stats.FACES_ANALYSED, 0) for _, row in minutes) == 2
        markers = [
            k async for k in redis.scan_iter(match=f"{settings.redis.key_prefix}stats:seen:embedder:*")
        ]
        assert len(markers) == 3, "one marker per counted crop"
        assert not any(b"crop-" in k for k in markers), "markers are named by a hash, never the crop id"
        assert all([0 < await redis.pttl(k) <= 60_000 for k in markers])
        assert [await redis.get(k) for k in markers] == [b"1"] * 3, "markers hold nothing about the face"
    finally:
        await redis.aclose()
