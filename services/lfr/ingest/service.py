"""`lfr ingest`: the composition root of the frame-ingest worker.

One worker analyses its shard of the cameras (``cameras.my_cameras``): a reader thread per camera
decodes and samples frames; one asyncio task per camera takes its newest frames in order and runs the
synchronous :class:`~lfr.ingest.pipeline.IngestPipeline` (detect, track, quality, best-shot, align, seal)
in a thread pool sized to the CPUs the pod may use; sealed crops go to the non-blocking
:class:`~lfr.ingest.publisher.CropPublisher`.

Governance: a camera's frames are analysed only while its deployment is authorised, running and inside its
time window (the same rule the embedder applies to crops); until then frames are decoded for health
reporting and dropped unanalysed (``lfr_ingest_frames_dropped_total{reason="deployment_not_live"}``).

Logs hold camera ids, counts and timings only: never images, chips, crops or embeddings.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from lfr.core import stats
from lfr.core.config import Settings
from lfr.core.crypto import CropKeyring
from lfr.core.redis_client import make_redis
from lfr.core.retry import wait_or_timeout
from lfr.core.serde import encode
from lfr.core.service import ServiceContext
from lfr.ingest import metrics as m
from lfr.ingest.cameras import Camera, CameraConfigError, my_cameras, replica_ordinal
from lfr.ingest.crops import CropKey
from lfr.ingest.pipeline import FrameResult, IngestPipeline
from lfr.ingest.publisher import CropPublisher
from lfr.ingest.registry import CameraRegistry, all_cameras
from lfr.ingest.reports import CameraReporter
from lfr.ingest.sources import CameraSource, CaptureFactory
from lfr.ingest.status import STATUS_INTERVAL_S, write_status

# Re-exported: the synchronous pipeline is part of this service's public surface (tests, benchmark).
__all__ = ["DeploymentGate", "IngestPipeline", "IngestWorker", "main"]

log = logging.getLogger(__name__)

KeySource = Callable[[], Awaitable[tuple[str, bytes]]]
Gate = Callable[[str], Awaitable[bool]]
DesiredCameras = Callable[[], Awaitable[list[Camera]]]
SYNC_INTERVAL_S = 3.0


def usable_cpus() -> int:
    """CPUs this process may use: the cgroup CPU quota (Kubernetes limits) if set, else the affinity."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:
        n = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            n = min(n, max(1, int(-(-int(quota) // int(period)))))
    except (OSError, ValueError):
        pass
    return max(1, n)


class DeploymentGate:
    """Whether a deployment is live (authorised, running, in its window), cached for ``ttl_s``.

    Fails closed: when Redis cannot answer, frames are not analysed.
    """

    def __init__(self, settings: Settings, redis: aioredis.Redis, ttl_s: float = 2.0) -> None:
        from lfr.watchlist.deployments import DeploymentStore, LiveDeployments

        self._live = LiveDeployments(DeploymentStore(settings, redis), ttl_s=ttl_s)
        self._warned_at = 0.0

    async def __call__(self, deployment_id: str) -> bool:
        from lfr.watchlist.deployments import is_live

        try:
            dep = await self._live.get(deployment_id)
        except (RedisError, OSError) as exc:
            if time.monotonic() - self._warned_at > 60:
                self._warned_at = time.monotonic()
                log.warning("deployment lookup failed (%s): frames are not analysed", type(exc).__name__)
            return False
        return dep is not None and is_live(dep)


class IngestWorker:
    """Runs the camera readers, the per-camera analysis tasks, the publisher and the status reporter."""

    def __init__(
        self,
        settings: Settings,
        cameras: list[Camera],
        pipeline: IngestPipeline,
        keys: KeySource,
        publisher: CropPublisher,
        gate: Gate | None = None,
        redis: aioredis.Redis | None = None,
        replica: int = 0,
        capture_factory: CaptureFactory | None = None,
        pace_files: bool = True,
        threads: int | None = None,
        desired: DesiredCameras | None = None,
        reporter: CameraReporter | None = None,
    ) -> None:
        self.settings = settings
        self.reporter = reporter
        self.pipeline = pipeline
        self.keys = keys
        self.publisher = publisher
        self.gate = gate
        self.redis = redis
        self.replica = replica
        self.capture_factory = capture_factory
        self.pace_files = pace_files
        self.desired = desired
        self.sources = {
            c.camera_id: CameraSource(c, settings, capture_factory, pace_files=pace_files) for c in cameras
        }
        n = threads or settings.ingest.analyse_threads or usable_cpus()
        # Cameras can arrive later (the registry), so the pool is sized by CPUs then, not by today's list.
        self.threads = max(1, n if desired is not None else min(n, len(cameras) or 1))
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._executor = ThreadPoolExecutor(self.threads, thread_name_prefix="ingest-analyse")
        self.errors: dict[str, int] = {}

    @property
    def cameras(self) -> list[Camera]:
        """The cameras being read now, in the order they were added."""
        return [src.camera for src in self.sources.values()]

    def status(self) -> list[dict[str, Any]]:
        now = time.monotonic()
        out = []
        for src in self.sources.values():
            cam = src.camera
            doc = src.health.snapshot(now)
            doc.update(
                deployment_id=cam.deployment_id,
                url=cam.safe_url,
                kind=cam.kind,
                analyse_fps_target=cam.fps(self.settings),
                active_tracks=self.pipeline.active_tracks(cam.camera_id),
                queued_frames=len(src.queue),
            )
            out.append(doc)
        return out

    async def run(self, stopping: asyncio.Event) -> None:
        log.info("ingest analysing %d camera(s) with %d analysis thread(s)", len(self.cameras), self.threads)
        for src in self.sources.values():
            src.start()
        sender = asyncio.create_task(self.publisher.run(stopping), name="crop-publisher")
        reporter = asyncio.create_task(self._report(stopping), name="camera-status")
        for cam in self.cameras:
            self._tasks[cam.camera_id] = asyncio.create_task(
                self._camera_loop(cam, stopping), name=f"analyse-{cam.camera_id}"
            )
        syncer = asyncio.create_task(self._sync(stopping), name="camera-sync") if self.desired else None
        try:
            await stopping.wait()
        finally:
            if syncer is not None:
                syncer.cancel()
                await asyncio.gather(syncer, return_exceptions=True)
            for src in self.sources.values():
                src.request_stop()
            deadline = time.monotonic() + 2.0
            for src in self.sources.values():
                src.stop(join_s=deadline - time.monotonic())
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)
            await self.publisher.close(timeout_s=5.0)
            await asyncio.gather(sender, return_exceptions=True)
            reporter.cancel()
            await asyncio.gather(reporter, return_exceptions=True)
            self._executor.shutdown(wait=False, cancel_futures=True)
            t = self.pipeline.totals
            log.info(
                "ingest stopped: %d frames analysed, %d faces, %d tracks, %d crops, %d delivered",
                t.frames,
                t.faces,
                t.tracks,
                t.crops,
                self.publisher.stats.delivered,
            )

    def add_camera(self, cam: Camera, stopping: asyncio.Event) -> None:
        """Start reading and analysing a camera while the worker runs."""
        src = CameraSource(cam, self.settings, self.capture_factory, pace_files=self.pace_files)
        self.sources[cam.camera_id] = src
        src.start()
        self._tasks[cam.camera_id] = asyncio.create_task(
            self._camera_loop(cam, stopping), name=f"analyse-{cam.camera_id}"
        )
        log.info("camera %s added (deployment %s)", cam.camera_id, cam.deployment_id)

    async def remove_camera(self, camera_id: str) -> None:
        """Stop a camera: its reader ends, its analysis task finishes, its held best shots are dropped."""
        src = self.sources.pop(camera_id, None)
        if src is not None:
            src.request_stop()
            await asyncio.to_thread(src.stop, 2.0)
        task = self._tasks.pop(camera_id, None)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        log.info("camera %s removed", camera_id)

    async def _sync(self, stopping: asyncio.Event) -> None:
        """Follow the registry: start this replica's new cameras, stop the ones taken away or changed."""
        assert self.desired is not None
        while not stopping.is_set():
            try:
                wanted = {c.camera_id: c for c in await self.desired()}
            except (RedisError, OSError, CameraConfigError) as exc:
                log.warning("camera list not refreshed: %s", type(exc).__name__)
                wanted = None
            if wanted is not None:
                current = {c.camera_id: c for c in self.cameras}
                for cid, cam in current.items():
                    if cid not in wanted or wanted[cid] != cam:
                        await self.remove_camera(cid)
                for cid, cam in wanted.items():
                    if cid not in self.sources:
                        self.add_camera(cam, stopping)
            await wait_or_timeout(stopping, SYNC_INTERVAL_S)

    async def _camera_loop(self, cam: Camera, stopping: asyncio.Event) -> None:
        src = self.sources[cam.camera_id]
        loop = asyncio.get_running_loop()
        label = cam.camera_id
        while not stopping.is_set():
            frame = await src.next_frame()
            if frame is None:
                break
            if self.gate is not None and not await self.gate(cam.deployment_id):
                src.health.not_live += 1
                src.health.state = "not_live"
                m.FRAMES_DROPPED.labels(label, "deployment_not_live").inc()
                continue
            try:
                key = CropKey(*await self.keys())
            except (RedisError, OSError) as exc:
                m.FRAMES_DROPPED.labels(label, "key_unavailable").inc()
                self._count_error(cam, f"crop key unavailable: {type(exc).__name__}")
                continue
            try:
                result = await loop.run_in_executor(self._executor, self.pipeline.process, cam, frame, key)
            except Exception as exc:  # one bad frame or model error must not end the camera's analysis
                m.FRAMES_DROPPED.labels(label, "error").inc()
                # Type and a bounded message only: an exception text must not carry pixel data into logs.
                self._count_error(cam, f"analysis failed: {type(exc).__name__}: {str(exc)[:160]}")
                continue
            if src.health.state == "not_live":
                src.health.state = "connected"
            src.note_analysed(gated=result.gated)
            self._publish(cam, result)
            await self._count_tracks(cam, result)
        if not stopping.is_set() and src.finished:
            # A file that ended: its tracks end now, so their held best shots are still sent.
            try:
                key = CropKey(*await self.keys())
                final = self.pipeline.finish(cam, key)
                self._publish(cam, final)
                await self._count_tracks(cam, final)
            except (RedisError, OSError) as exc:
                self._count_error(cam, f"crop key unavailable: {type(exc).__name__}")
            log.info("camera %s: stream ended", cam.camera_id)

    def _publish(self, cam: Camera, result: FrameResult) -> None:
        label = cam.camera_id
        if result.detect_s > 0:
            m.DETECT_SECONDS.observe(result.detect_s)
        if result.faces:
            m.FACES.labels(label).inc(result.faces)
        if result.tracks_started:
            m.TRACKS.labels(label).inc(result.tracks_started)
        if result.scene_cut:
            m.SCENE_CUTS.labels(label).inc()
        m.ACTIVE_TRACKS.labels(label).set(self.pipeline.active_tracks(label))
        for outcome, n in result.outcomes.items():
            m.CROPS.labels(label, outcome).inc(n)
        for out in result.crops:
            self.publisher.submit(cam.camera_id, encode(out.crop), out.captured_mono)
        if self.reporter is not None:
            self.reporter.note(label, result.faces, len(result.crops))

    async def _count_tracks(self, cam: Camera, result: FrameResult) -> None:
        """Deployment statistics of ended tracks: how many were seen well enough, and how many of those
        were never searched (counts only; the marker is a hash of the camera's track id)."""
        per_track = {
            f"{cam.camera_id}/{tid}": {stats.TRACKS_ELIGIBLE: 1, stats.TRACKS_UNSEARCHED: int(not searched)}
            for tid, eligible, searched in result.ended_tracks
            if eligible
        }
        if not per_track or self.redis is None:
            return
        m.TRACKS_UNSEARCHED.labels(cam.camera_id).inc(
            sum(c[stats.TRACKS_UNSEARCHED] for c in per_track.values())
        )
        try:
            await stats.add_once(
                self.redis, self.settings, cam.deployment_id, "ingest", per_track, marker_ttl_ms=3_600_000
            )
        except (RedisError, OSError) as exc:
            self._count_error(cam, f"statistics unavailable: {type(exc).__name__}")

    def _count_error(self, cam: Camera, message: str) -> None:
        n = self.errors.get(cam.camera_id, 0) + 1
        self.errors[cam.camera_id] = n
        src = self.sources.get(cam.camera_id)
        if src is not None:
            src.health.last_error = message
        if n == 1 or n % 100 == 0:
            log.warning("camera %s: %s (%d so far)", cam.camera_id, message, n)

    async def _report(self, stopping: asyncio.Event) -> None:
        """Refresh per-camera gauges and the Redis status every few seconds."""
        warned = False
        while not stopping.is_set():
            docs = self.status()
            for doc in docs:
                cid = doc["camera_id"]
                m.CAMERA_INPUT_FPS.labels(cid).set(doc["input_fps"])
                m.CAMERA_ANALYSED_FPS.labels(cid).set(doc["analysed_fps"])
                if doc["last_frame_age_s"] is not None:
                    m.CAMERA_FRAME_AGE.labels(cid).set(doc["last_frame_age_s"])
            if self.redis is not None and docs:
                try:
                    await write_status(self.redis, self.settings, docs, self.replica)
                    warned = False
                except (RedisError, OSError) as exc:
                    if not warned:
                        log.warning("camera status not written to Redis: %s", type(exc).__name__)
                        warned = True
            if self.reporter is not None and docs:
                self.reporter.submit(docs, self.replica)
            await wait_or_timeout(stopping, STATUS_INTERVAL_S)


async def main(ctx: ServiceContext) -> None:
    """Entry point for ``lfr ingest`` (run by :func:`lfr.core.service.run_service`)."""
    settings = ctx.settings
    ordinal = replica_ordinal(settings)
    redis = make_redis(settings)
    registry = CameraRegistry(settings, redis)

    async def desired() -> list[Camera]:
        """This replica's shard of the cameras file plus the cameras registered through the API."""
        return my_cameras(await all_cameras(settings, registry), settings.ingest.replicas, ordinal)

    cameras = await desired()
    log.info(
        "replica %d of %d: %d camera(s) now; registry changes are followed",
        ordinal,
        settings.ingest.replicas,
        len(cameras),
    )
    holder: dict[str, IngestPipeline] = {}
    reporter = CameraReporter(settings)

    async def redis_ok() -> bool:
        return bool(await redis.ping())

    ctx.health.add_check("detector", lambda: "pipeline" in holder)
    ctx.health.add_check("redis", redis_ok)
    try:
        holder["pipeline"] = await asyncio.to_thread(IngestPipeline.from_settings, settings)
        publisher = CropPublisher(settings)
        ctx.health.add_check("broker", publisher.broker_ready)
        keyring = CropKeyring(settings)  # the memory-only key store
        gate: Gate | None = None
        if settings.ingest.require_live_deployment:
            gate = DeploymentGate(settings, redis)
        worker = IngestWorker(
            settings,
            cameras,
            holder["pipeline"],
            keyring.current,
            publisher,
            gate=gate,
            redis=redis,
            replica=ordinal,
            desired=desired,
            reporter=reporter,
        )
        await worker.run(ctx.stopping)
    finally:
        await reporter.close()
        await redis.aclose()
