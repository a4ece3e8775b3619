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
from lfr.ingest.pipeline import IngestPipeline, OutgoingCrop, SendReason
from lfr.ingest.publisher import CropPublisher
from lfr.ingest.service import IngestWorker
from lfr.ingest.sources import Frame
from lfr.v1 import crop_pb2
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


def _frames(pipe: IngestPipeline, frames: int) -> list[list[OutgoingCrop]]:
    """The crops each frame sent (index 0 = frame 1), then those of the stream's end as the last entry."""
    out = [pipe.process(CAM, noisy_frame(i, i * 0.2), KEY).crops for i in range(1, frames + 1)]
    return [*out, pipe.finish(CAM, KEY).crops]


def test_a_live_unpassed_track_is_searched_once_when_seen_long_enough_not_at_its_end() -> None:
    # Faces fail the gate (0.7 < 0.9) from frame 1 (t 0.2); at frame 6 (t 1.2) the face has been big for
    # 1 s: its best face of the last 0.4 s goes now, instead of 2 s after the person has gone.
    script = _walk(0.7, frames=15)
    script[5] = [face_at(140, 120, 90, score=0.8)]  # in the window at frame 6
    pipe = IngestPipeline(
        settings(unpassed_send_after_s=1.0, unpassed_face_window_s=0.4),
        ScriptedDetector(script),
        TEMPLATE,
        "emb/mtcnn5",
    )
    per_frame = _frames(pipe, 15)
    sent = [(i + 1, o) for i, crops in enumerate(per_frame) for o in crops]
    assert len(sent) == 1
    frame, out = sent[0]
    assert frame == 6 and out.reason == SendReason.UNPASSED_LIVE
    assert out.crop.detector_score == pytest.approx(0.8) and out.held_s == pytest.approx(0.2)
    t = pipe.totals.as_dict()
    assert t["fallback_crops"] == t["fallback_crops_live"] == 1 and t["track_coverage"] == 1.0
    assert t["crops_per_track_histogram"] == {"1": 1}


def test_the_live_send_prefers_a_recent_face_to_an_older_better_one() -> None:
    script = _walk(0.7, frames=8)
    script[1] = [face_at(108, 120, 90, score=0.85)]  # the best face, 1 s old at frame 6
    script[5] = [face_at(140, 120, 90, score=0.75)]  # the best of the last 0.4 s
    chosen = {}
    for window in (0.4, None):
        pipe = IngestPipeline(
            settings(unpassed_face_window_s=window), ScriptedDetector(script), TEMPLATE, "emb/mtcnn5"
        )
        (out,) = [o for crops in _frames(pipe, 8) for o in crops]
        chosen[window] = (round(out.crop.detector_score, 2), round(out.held_s, 1))
    assert chosen == {0.4: (0.75, 0.2), None: (0.85, 1.0)}


def test_a_track_that_passes_after_its_live_search_stays_within_the_per_track_cap() -> None:
    # Unpassed until frame 8, then passing with rising scores: the unpassed face goes at frame 6, the first
    # passing face at once at frame 8 (not held by the interval), and the track never exceeds its cap.
    script = {
        i: [face_at(100 + 8 * i, 120, 90, score=0.7 if i < 8 else min(0.9 + 0.01 * (i - 8), 1.0))]
        for i in range(1, 31)
    }
    for cap, expected in ((3, 3), (1, 1)):
        pipe = IngestPipeline(
            settings(best_shot_max_per_track=cap, best_shot_margin=0.001),
            ScriptedDetector(script),
            TEMPLATE,
            "emb/mtcnn5",
        )
        sent = [(i + 1, o.reason) for i, crops in enumerate(_frames(pipe, 30)) for o in crops]
        assert len(sent) == expected, sent
        assert sent[0] == (6, SendReason.UNPASSED_LIVE)
        if cap > 1:
            assert sent[1] == (8, SendReason.BEST_SHOT)
        assert pipe.totals.crops_per_ended_track == {expected: 1}


def test_no_live_send_for_a_brief_track_or_with_the_setting_off() -> None:
    brief = IngestPipeline(settings(), ScriptedDetector(_walk(0.7, frames=4)), TEMPLATE, "emb/mtcnn5")
    assert [o for crops in _frames(brief, 4) for o in crops] == []  # big for 0.6 s: neither now nor at end
    off = IngestPipeline(
        settings(unpassed_send_after_s=None), ScriptedDetector(_walk(0.7)), TEMPLATE, "emb/mtcnn5"
    )
    per_frame = _frames(off, 10)
    assert all(crops == [] for crops in per_frame[:-1])
    (out,) = per_frame[-1]
    assert out.reason == SendReason.UNPASSED_END and off.totals.fallback_crops_live == 0


def test_each_of_two_unpassed_tracks_is_searched_live_once() -> None:
    script = {
        i: [face_at(100 + 8 * i, 120, 90, 0.7), face_at(400, 300 - 4 * i, 80, 0.6)] for i in range(1, 21)
    }
    pipe = IngestPipeline(settings(), ScriptedDetector(script), TEMPLATE, "emb/mtcnn5")
    sent = [(i + 1, o.crop.track_id) for i, crops in enumerate(_frames(pipe, 20)) for o in crops]
    assert [f for f, _ in sent] == [6, 6] and len({tid for _, tid in sent}) == 2


def test_a_steady_track_sends_refresh_views_and_every_crop_says_why_on_the_wire() -> None:
    # One person in view for 6 s whose faces all pass with the same quality: none is better by the margin.
    script = _walk(0.95, frames=30)
    sent: dict[float | None, list[tuple[int, str, int]]] = {}
    for refresh in (2.0, None):
        pipe = IngestPipeline(
            settings(best_shot_refresh_s=refresh), ScriptedDetector(script), TEMPLATE, "emb/mtcnn5"
        )
        per_frame = _frames(pipe, 30)
        assert pipe.totals.refresh_crops == (2 if refresh else 0)
        sent[refresh] = [
            (i + 1, o.reason, o.crop.send_reason) for i, crops in enumerate(per_frame) for o in crops
        ]
    assert [(f, r) for f, r, _ in sent[2.0]] == [
        (1, SendReason.BEST_SHOT),
        (11, SendReason.REFRESH),  # 2 s after the first crop
        (21, SendReason.REFRESH),  # and the cap (3) ends it
    ]
    assert [w for _, _, w in sent[2.0]] == [
        crop_pb2.SEND_REASON_BEST_SHOT,
        crop_pb2.SEND_REASON_REFRESH,
        crop_pb2.SEND_REASON_REFRESH,
    ]
    assert sent[None] == [(1, SendReason.BEST_SHOT, crop_pb2.SEND_REASON_BEST_SHOT)]


def test_fallback_crops_say_so_on_the_wire() -> None:
    live = IngestPipeline(settings(), ScriptedDetector(_walk(0.7, frames=15)), TEMPLATE, "emb/mtcnn5")
    (out,) = [o for crops in _frames(live, 15) for o in crops]
    assert out.crop.send_reason == crop_pb2.SEND_REASON_UNPASSED_LIVE
    end = IngestPipeline(
        settings(unpassed_send_after_s=None), ScriptedDetector(_walk(0.7)), TEMPLATE, "emb/mtcnn5"
    )
    (out,) = [o for crops in _frames(end, 10) for o in crops]
    assert out.crop.send_reason == crop_pb2.SEND_REASON_UNPASSED_END


def test_a_shot_released_at_the_track_end_is_counted_once_per_track() -> None:
    # Rising scores for 0.8 s: the first face goes at once, the better ones are held by the 1 s interval and
    # the best is sent as the track ends; the histogram says 2 crops for the track, as were sent.
    script = {i: [face_at(100 + 8 * i, 120, 90, score=0.9 + 0.02 * i)] for i in range(1, 5)}
    pipe = IngestPipeline(settings(best_shot_margin=0.001), ScriptedDetector(script), TEMPLATE, "emb/mtcnn5")
    sent = [(i + 1, o.reason) for i, crops in enumerate(_frames(pipe, 4)) for o in crops]
    assert sent == [(1, SendReason.BEST_SHOT), (5, SendReason.HELD)]  # entry 5: the stream's end
    assert pipe.totals.crops_per_ended_track == {2: 1}


def test_a_track_that_leaves_sends_no_refresh_view() -> None:
    # In view for 1.6 s with steady faces, then gone: no refresh (2 s) while seen, and none at the end.
    pipe = IngestPipeline(settings(), ScriptedDetector(_walk(0.95, frames=8)), TEMPLATE, "emb/mtcnn5")
    per_frame = _frames(pipe, 20)
    assert [(i + 1, o.reason) for i, crops in enumerate(per_frame) for o in crops] == [
        (1, SendReason.BEST_SHOT)
    ]
    assert pipe.totals.crops_per_ended_track == {1: 1}


def test_a_scene_cut_ends_every_track_so_the_next_shot_starts_new_ones() -> None:
    # One face standing still for 10 frames; at frame 6 the picture changes to another shot with a face in
    # the same place: without cut detection the track would carry on with whoever is there now.
    script = {i: [face_at(200, 150, 90, score=0.95)] for i in range(1, 11)}

    def shot_frame(seq: int, t: float) -> Frame:
        f = noisy_frame(seq, t)
        if seq >= 6:
            f.image[1:, :, :] = (f.image[1:, :, :] // 4) + np.array([0, 0, 180], np.uint8)  # reddish shot
        return f

    tracks: dict[float | None, set[str]] = {}
    for bound in (0.3, None):
        pipe = IngestPipeline(
            settings(scene_cut_distance=bound), ScriptedDetector(script), TEMPLATE, "emb/mtcnn5"
        )
        crops = [o.crop for i in range(1, 11) for o in pipe.process(CAM, shot_frame(i, i * 0.2), KEY).crops]
        crops += [o.crop for o in pipe.finish(CAM, KEY).crops]
        tracks[bound] = {c.track_id for c in crops}
        assert pipe.totals.scene_cuts == (1 if bound else 0)
    assert len(tracks[0.3]) == 2 and len(tracks[None]) == 1
