"""Per-camera counts for the operations monitor, on ``lfr.camera-stats.v1`` every status interval.

Each record holds what happened since the previous one (frames decoded, frames analysed, faces detected,
crops sent), so the monitor's per-minute windows are sums of records; a record is written even when every
count is zero, which is how the monitor tells a camera that delivers nothing from one that is gone. Counts
and ids only: nothing about any face. A report that cannot be sent keeps its counts for the next one.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from lfr.core import topics
from lfr.core.bus import make_producer
from lfr.core.config import Settings
from lfr.core.serde import version_header

log = logging.getLogger(__name__)

ProducerFactory = Callable[[Settings], AIOKafkaProducer]


class CameraReporter:
    def __init__(self, settings: Settings, producer_factory: ProducerFactory | None = None) -> None:
        self.settings = settings
        self._factory = producer_factory or (lambda s: make_producer(s, "ingest-reports"))
        self._producer: AIOKafkaProducer | None = None
        self._found: dict[str, list[int]] = {}  # camera -> [faces, crops] since the last report sent
        self._sent_frames: dict[str, tuple[int, int]] = {}  # camera -> (frames_in, analysed) last reported
        self._warned = False
        self._task: asyncio.Task[bool] | None = None

    def submit(self, docs: list[dict[str, Any]], replica: int) -> None:
        """Send in the background: the status loop must keep writing Redis while the broker is away.

        A report still in flight (a broker that does not answer) makes this one skip; its counts stay
        in the tally and go with the next report that is sent.
        """
        if self._task is not None and not self._task.done():
            return
        self._task = asyncio.create_task(self.send(docs, replica), name="camera-reports")

    def note(self, camera_id: str, faces: int, crops: int) -> None:
        tally = self._found.setdefault(camera_id, [0, 0])
        tally[0] += faces
        tally[1] += crops

    def reports(self, docs: list[dict[str, Any]], replica: int, now_ms: int) -> list[dict[str, Any]]:
        """One report per camera status doc: the counts since the last report that was sent."""
        out = []
        for doc in docs:
            cid = str(doc["camera_id"])
            frames, analysed = int(doc.get("frames_in", 0)), int(doc.get("frames_analysed", 0))
            before = self._sent_frames.get(cid, (0, 0))
            # A camera source re-created (removed and added again) restarts its counters from zero.
            d_frames = frames - before[0] if frames >= before[0] else frames
            d_analysed = analysed - before[1] if analysed >= before[1] else analysed
            faces, crops = self._found.get(cid, [0, 0])
            out.append(
                {
                    "camera_id": cid,
                    "deployment_id": str(doc.get("deployment_id", "")),
                    "replica": replica,
                    "at_ms": now_ms,
                    "frames": d_frames,
                    "analysed": d_analysed,
                    "faces": faces,
                    "crops": crops,
                    "connected": bool(doc.get("connected", False)),
                    "_totals": (frames, analysed),
                }
            )
        return out

    def _mark_sent(self, reports: list[dict[str, Any]]) -> None:
        for r in reports:
            cid = r["camera_id"]
            self._sent_frames[cid] = r["_totals"]
            tally = self._found.get(cid)
            if tally is not None:
                tally[0] -= r["faces"]
                tally[1] -= r["crops"]

    async def send(self, docs: list[dict[str, Any]], replica: int) -> bool:
        """Write one report per camera; False (counts kept for the next report) when the broker is away."""
        reports = self.reports(docs, replica, int(time.time() * 1000))
        if not reports:
            return True
        try:
            if self._producer is None:
                producer = self._factory(self.settings)
                try:
                    await producer.start()
                except BaseException:
                    await producer.stop()
                    raise
                self._producer = producer
            futures = []
            for r in reports:
                value = json.dumps({k: v for k, v in r.items() if not k.startswith("_")}).encode()
                futures.append(
                    await self._producer.send(
                        topics.CAMERA_STATS,
                        value,
                        key=r["camera_id"].encode(),
                        headers=[version_header(topics.CAMERA_STATS)],
                    )
                )
            for f in futures:
                await f
        except (KafkaError, OSError) as exc:
            if not self._warned:
                log.warning(
                    "camera reports not sent (%s); counts carried to the next report", type(exc).__name__
                )
                self._warned = True
            return False
        self._warned = False
        self._mark_sent(reports)
        return True

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
