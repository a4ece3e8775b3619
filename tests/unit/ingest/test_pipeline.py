"""IngestPipeline and IngestWorker with a fake detector: sealed crops, best-shot limits, the live gate."""

from __future__ import annotations

import asyncio
import itertools
import os
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import pytest

from lfr.core.config import load_settings
from lfr.core.crypto import crop_aad, open_blob
from lfr.core.serde import decode
from lfr.ingest.cameras import Camera
from lfr.ingest.crops import CropKey
from lfr.ingest.pipeline import IngestPipeline
from lfr.ingest.publisher import CropPublisher
from lfr.ingest.service import IngestWorker
from lfr.ingest.sources import Frame
from lfr.v1.crop_pb2 import FaceCrop
from lfr.vision import templates
from lfr.vision.cards import ChipTemplate
from lfr.vision.detectors.base import Detection

TEMPLATE = ChipTemplate(size=150, padding=0.25, points=templates.MTCNN5_DLIB_CHIP)
KEY = CropKey("key-1", os.urandom(32))
CAM = Camera(camera_id="cam-1", deployment_id="dep-1", url="rtsp://h/s")


def face_at(x: float, y: float, w: float, score: float = 0.99) -> Detection:
    rel = np.asarray(templates.MTCNN5_IN_BOX, np.float32)
    lm = np.stack([x + rel[:, 0] * w, y + rel[:, 1] * w], axis=1).astype(np.float32)
    return Detection(bbox=(x, y, w, w), landmarks=lm, score=score)


@dataclass
class ScriptedDetector:
    """Returns the detections scripted for each frame's seq (frames are textured noise)."""

    script: dict[int, list[Detection]]
    model_id: str = "fake-detector:1"
    landmark_scheme: str = "mtcnn5"

    def detect(self, image: np.ndarray) -> list[Detection]:
        return self.script.get(int(image[0, 0, 0]), [])


def noisy_frame(seq: int, t: float) -> Frame:
    img = np.random.default_rng(seq).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    img[0, 0, 0] = seq  # tells the scripted detector which frame this is
    return Frame(CAM.camera_id, seq, 1_700_000_000_000 + int(t * 1000), 0.0, t, img)


def settings(**ingest: Any):  # type: ignore[no-untyped-def]
    return load_settings(
        ingest={"best_shot_max_per_track": 3, "best_shot_min_interval_s": 1.0, **ingest},
        quality={"min_face_px": 40, "min_sharpness": 20.0, "min_detector_score": 0.9},
        kafka={"bootstrap_servers": "127.0.0.1:1"},
    )


def test_crops_are_sealed_complete_and_bounded_per_track() -> None:
    # One person walks for 6 s at 5 fps, the detector score rising (a better shot later); a tiny face
    # in every frame fails the quality gate.
    script = {
        i: [face_at(100 + 8 * i, 120, 90, score=min(0.9 + 0.004 * i, 1.0)), face_at(500, 400, 20)]
        for i in range(1, 31)
    }
    pipe = IngestPipeline(settings(best_shot_margin=0.001), ScriptedDetector(script), TEMPLATE, "emb/mtcnn5")
    crops: list[FaceCrop] = []
    for i in range(1, 31):
        res = pipe.process(CAM, noisy_frame(i, i * 0.2), KEY)
        assert res.faces == 2 and res.rejected_quality == 1
        crops += [o.crop for o in res.crops]
    crops += [o.crop for o in pipe.finish(CAM, KEY).crops]
    assert 2 <= len(crops) <= 3
    assert len({c.track_id for c in crops}) == 1
    assert len({c.crop_id for c in crops}) == len(crops)
    first = crops[0]
    assert first.frame_seq == 1  # the first good face goes out at once
    times = [c.captured_at.ToMilliseconds() for c in crops]
    assert all(b - a >= 1000 for a, b in itertools.pairwise(times))
    for c in crops:
        assert c.deployment_id == "dep-1" and c.camera_id == "cam-1"
        assert c.detector_model_id == "fake-detector:1" and c.chip_template == "emb/mtcnn5"
        assert c.chip_size == 150 and len(c.landmarks) == 5 and c.quality.score > 0
        assert c.bbox.width == pytest.approx(90)
        assert c.chip.key_id == "key-1" and c.chip.content_type == "image/jpeg"
        jpeg = open_blob(KEY.key, c.chip, crop_aad(c.crop_id, c.camera_id, c.deployment_id))
        chip = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert chip.shape == (150, 150, 3)
        assert jpeg not in c.SerializeToString()  # only ciphertext on the wire
    t = pipe.totals.as_dict()
    assert t["frames"] == 30 and t["faces"] == 60 and t["rejected_quality"] == 30
    assert t["tracks"] == 2 and t["crops"] == len(crops)
    assert t["crops_per_track_median"] == len(crops) and t["tracks_without_crop"] == 1


def test_sealed_chip_is_bound_to_its_camera_and_deployment() -> None:
    from lfr.core.crypto import DecryptFailed

    pipe = IngestPipeline(settings(), ScriptedDetector({1: [face_at(50, 50, 100)]}), TEMPLATE, "emb/mtcnn5")
    (out,) = pipe.process(CAM, noisy_frame(1, 0.0), KEY).crops
    c = out.crop
    with pytest.raises(DecryptFailed):
        open_blob(KEY.key, c.chip, crop_aad(c.crop_id, "another-camera", c.deployment_id))


class FakeBroker:
    def __init__(self) -> None:
        self.values: list[bytes] = []

    def producer(self, _s: Any) -> Any:
        broker = self

        class P:
            async def start(self) -> None:
                pass

            async def stop(self) -> None:
                pass

            async def send(self, topic: str, value: bytes, key: bytes) -> asyncio.Future[Any]:
                broker.values.append(value)
                fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
                fut.set_result(None)
                return fut

        return P()


class FakeCapture:
    def __init__(self) -> None:
        self.seq = 0

    def isOpened(self) -> bool:
        return True

    def grab(self) -> bool:
        import time

        time.sleep(0.02)
        self.seq += 1
        return True

    def retrieve(self) -> tuple[bool, Any]:
        return True, noisy_frame(self.seq % 250 or 1, 0.0).image

    def get(self, prop: int) -> float:
        return 0.0

    def release(self) -> None:
        pass


async def test_worker_analyses_only_while_the_deployment_is_live() -> None:
    s = settings(analyse_fps=20, queue_frames=2)
    detector = ScriptedDetector({i: [face_at(60 + i, 60, 100)] for i in range(1, 250)})
    pipe = IngestPipeline(s, detector, TEMPLATE, "emb/mtcnn5")
    broker = FakeBroker()
    publisher = CropPublisher(s, producer_factory=broker.producer)
    live = {"dep-1": False}

    async def gate(deployment_id: str) -> bool:
        return live[deployment_id]

    async def keys() -> tuple[str, bytes]:
        return KEY.key_id, KEY.key

    worker = IngestWorker(
        s, [CAM], pipe, keys, publisher, gate=gate, capture_factory=lambda c: FakeCapture(), threads=1
    )
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    await asyncio.sleep(0.6)
    health = worker.sources["cam-1"].health
    assert health.not_live > 0 and pipe.totals.frames == 0 and broker.values == []
    assert worker.status()[0]["state"] == "not_live"
    live["dep-1"] = True
    async with asyncio.timeout(5):
        while not broker.values:  # noqa: ASYNC110 (polls state the code under test owns)
            await asyncio.sleep(0.02)
    stop.set()
    await task
    assert pipe.totals.frames > 0 and health.frames_analysed == pipe.totals.frames
    crop = decode(FaceCrop, broker.values[0])
    assert crop.camera_id == "cam-1" and crop.deployment_id == "dep-1"
    assert publisher.stats.delivered == len(broker.values)


def _walk(score: float, frames: int = 10, width: float = 90) -> dict[int, list[Detection]]:
    return {i: [face_at(100 + 8 * i, 120, width, score=score)] for i in range(1, frames + 1)}


def _run(pipe: IngestPipeline, frames: int) -> tuple[list[FaceCrop], list[tuple[str, bool, bool]]]:
    crops: list[FaceCrop] = []
    ended: list[tuple[str, bool, bool]] = []
    for i in range(1, frames + 1):
        res = pipe.process(CAM, noisy_frame(i, i * 0.2), KEY)
        crops += [o.crop for o in res.crops]
        ended += res.ended_tracks
    final = pipe.finish(CAM, KEY)
    return crops + [o.crop for o in final.crops], ended + final.ended_tracks


def test_a_track_that_never_passed_the_gate_is_searched_once_with_its_best_face() -> None:
    # Every face of this 2 s track fails the gate (detector score 0.7 < 0.9) but is big enough.
    script = _walk(0.7)
    script[6] = [face_at(148, 120, 90, score=0.8)]  # its best face
    pipe = IngestPipeline(settings(), ScriptedDetector(script), TEMPLATE, "emb/mtcnn5")
    crops, ended = _run(pipe, 10)
    assert len(crops) == 1 and crops[0].detector_score == pytest.approx(0.8)
    assert len(ended) == 1 and ended[0][1:] == (True, True)
    t = pipe.totals.as_dict()
    assert t["fallback_crops"] == 1 and t["track_coverage"] == 1.0


def test_without_fallback_the_unsearched_track_is_counted() -> None:
    pipe = IngestPipeline(
        settings(search_unpassed_tracks=False), ScriptedDetector(_walk(0.7)), TEMPLATE, "emb/mtcnn5"
    )
    crops, ended = _run(pipe, 10)
    assert crops == [] and ended[0][1:] == (True, False)
    assert pipe.totals.as_dict()["track_coverage"] == 0.0


def test_faces_below_the_fallback_floor_or_too_small_are_never_sent() -> None:
    for script in (_walk(0.3), _walk(0.8, width=30)):
        pipe = IngestPipeline(settings(), ScriptedDetector(script), TEMPLATE, "emb/mtcnn5")
        crops, _ = _run(pipe, 10)
        assert crops == []
    # A 30 px face is not eligible for coverage either; a brief track (< 1 s) is not counted.
    brief = IngestPipeline(settings(), ScriptedDetector(_walk(0.95, frames=3)), TEMPLATE, "emb/mtcnn5")
    _, ended = _run(brief, 3)
    assert ended and not ended[0][1]


def test_a_track_that_passed_sends_no_fallback() -> None:
    pipe = IngestPipeline(settings(), ScriptedDetector(_walk(0.99)), TEMPLATE, "emb/mtcnn5")
    crops, ended = _run(pipe, 10)
    assert crops and all(c.detector_score >= 0.9 for c in crops)
    assert pipe.totals.fallback_crops == 0 and ended[0][1:] == (True, True)
