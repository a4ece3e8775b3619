"""Crops injected straight onto ``lfr.crops.v1``, as a site of many cameras would send them.

Why bypass ingest: the recognition path (decrypt, embed, search, hit, alert) is sized separately from the
camera path, and only an injector can offer it more crops per second than this machine's cameras could
produce. Each crop is a real face chip sealed under the current key of the stack's crop key store (so the
embedder decrypts it exactly as it would an ingest crop), keyed by one of ``cameras`` simulated camera ids
so the records spread over the partitions, with ``captured_at`` set to the moment it is sent.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from lfr.core import topics
from lfr.core.bus import make_producer
from lfr.core.config import Settings
from lfr.core.crypto import CropKeyring, crop_aad
from lfr.core.serde import encode
from lfr.core.timeutil import ts_now
from lfr.v1.crop_pb2 import FaceCrop


@dataclass
class Injected:
    sent: int = 0
    behind_s: float = 0.0  # how far the injector itself fell behind its schedule at the end


def jpegs(chips: Sequence[np.ndarray]) -> list[bytes]:
    return [cv2.imencode(".jpg", c, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes() for c in chips]


async def inject(
    settings: Settings,
    deployment_id: str,
    chips: list[bytes],
    chip_size: int,
    rate: float,
    seconds: float,
    cameras: int,
    out: Injected,
    stop: asyncio.Event,
) -> None:
    """Send ``rate`` crops a second for ``seconds`` (or until ``stop``), cycling through ``chips``."""
    keyring = CropKeyring(settings)
    producer = make_producer(settings, "loadgen-inject")
    await producer.start()
    pending: list[asyncio.Future[object]] = []
    t0 = time.monotonic()
    try:
        i = 0
        while not stop.is_set():
            due = t0 + i / rate
            now = time.monotonic()
            if due - t0 >= seconds:
                break
            if due > now:
                await asyncio.sleep(due - now)
            crop_id = uuid.uuid4().hex
            cam = f"site-cam-{i % cameras}"
            crop = FaceCrop(
                crop_id=crop_id,
                deployment_id=deployment_id,
                camera_id=cam,
                track_id=crop_id,
                captured_at=ts_now(),
                chip_size=chip_size,
                chip=await keyring.encrypt(chips[i % len(chips)], crop_aad(crop_id, cam, deployment_id)),
            )
            pending.append(await producer.send(topics.CROPS, encode(crop), key=cam.encode()))
            i += 1
            out.sent = i
            if len(pending) >= 200:
                await asyncio.gather(*pending)
                pending.clear()
        out.behind_s = max(0.0, time.monotonic() - (t0 + i / rate))
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
