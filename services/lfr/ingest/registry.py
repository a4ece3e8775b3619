"""Cameras added through the API, kept in Redis beside the ones in the cameras file.

Why both: a force's fixed cameras live in configuration (reviewed, versioned), while a van deployment adds
and removes cameras on the day. Every ingest replica reads the same registry, takes its own shard of the
union, and re-reads it every few seconds (``IngestWorker._sync``), so nothing restarts. Each change
is audited; the audit record carries the camera URL with credentials removed.
"""

from __future__ import annotations

import json
import logging

import redis.asyncio as aioredis

from lfr.core.audit import AuditLog
from lfr.core.config import Settings
from lfr.core.redis_client import key as rkey
from lfr.core.redis_client import text
from lfr.ingest.cameras import Camera, CameraConfigError, load_cameras

log = logging.getLogger(__name__)


class CameraRegistry:
    def __init__(self, settings: Settings, redis: aioredis.Redis) -> None:
        self.settings = settings
        self.redis = redis
        self._hash = rkey(settings, "ingest", "registry")

    async def list(self) -> list[Camera]:
        raw = await self.redis.hgetall(self._hash)
        cameras = []
        for cid, doc in sorted(raw.items()):
            try:
                cameras.append(Camera.model_validate(json.loads(text(doc))))
            except ValueError:
                log.warning("camera %s in the registry is unreadable; skipped", text(cid))
        return cameras

    async def add(self, camera: Camera, actor: str, audit: AuditLog, reason: str = "") -> Camera:
        if camera.camera_id in file_camera_ids(self.settings):
            raise CameraConfigError(f"camera {camera.camera_id} is defined in the cameras file")
        if not await self.redis.hsetnx(self._hash, camera.camera_id, camera.model_dump_json()):
            raise CameraConfigError(f"camera {camera.camera_id} is already registered")
        await audit.append(
            actor,
            "camera.add",
            camera.camera_id,
            reason,
            {"deployment_id": camera.deployment_id, "url": camera.safe_url, "kind": camera.kind},
        )
        return camera

    async def remove(self, camera_id: str, actor: str, audit: AuditLog, reason: str = "") -> bool:
        if not await self.redis.hdel(self._hash, camera_id):
            return False
        await audit.append(actor, "camera.remove", camera_id, reason, {})
        return True


def file_camera_ids(settings: Settings) -> set[str]:
    if settings.ingest.cameras_file is None:
        return set()
    return {c.camera_id for c in load_cameras(settings)}


async def all_cameras(settings: Settings, registry: CameraRegistry | None) -> list[Camera]:
    """The cameras file's cameras plus the registry's; the file wins a clash of ids."""
    cameras = load_cameras(settings) if settings.ingest.cameras_file is not None else []
    if registry is None:
        return cameras
    known = {c.camera_id for c in cameras}
    for cam in await registry.list():
        if cam.camera_id in known:
            log.warning(
                "registered camera %s is also in the cameras file; the file's entry is used", cam.camera_id
            )
            continue
        cameras.append(cam)
    return cameras
