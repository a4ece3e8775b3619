"""Motion gating with the real detector, gate on against gate off on the same frames.

Fixed camera (a real face photo enters a still scene): detection is skipped on the still frames, and the
person is still detected on the first frame where they appear and sent exactly as with the gate off.
Moving camera (the real street video): the gate must not change which crops are sent.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from lfr.core.config import load_settings
from lfr.ingest.cameras import Camera
from lfr.ingest.crops import CropKey
from lfr.ingest.pipeline import IngestPipeline
from lfr.ingest.sources import Frame, Sampler

pytestmark = [pytest.mark.integration]

CAM = Camera(camera_id="fixed-cam", deployment_id="dep-fixed", url="rtsp://h/fixed")
KEY = CropKey("key-fixed", os.urandom(32))
FRAMES = 40  # 8 s at 5 fps
ENTERS, LEAVES = 12, 22


def _scene(face_photo: Path) -> list[np.ndarray]:
    rng = np.random.default_rng(5)
    texture = cv2.GaussianBlur(rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8), (0, 0), 6)
    gradient = np.linspace(40, 160, 1280, dtype=np.float32)[None, :, None]
    background = np.clip(texture.astype(np.float32) * 0.5 + gradient, 0, 255).astype(np.uint8)
    person = cv2.imread(str(face_photo))
    assert person is not None
    person = cv2.resize(person, (260, round(person.shape[0] * 260 / person.shape[1])))[:400]
    frames = []
    for i in range(FRAMES):
        noise = np.random.default_rng(100 + i).integers(-3, 4, background.shape)
        img = np.clip(background.astype(np.int16) + noise, 0, 255).astype(np.uint8)
        if ENTERS <= i < LEAVES:
            x, y = 200 + 40 * (i - ENTERS), 120
            h, w = person.shape[:2]
            img[y : y + h, x : x + w] = person
        frames.append(img)
    return frames


def _street_frames(video: Path, fps: float = 5.0) -> list[tuple[float, np.ndarray]]:
    """The street video sampled as the reader samples it: (stream seconds, image) at ``fps``."""
    cap = cv2.VideoCapture(str(video), cv2.CAP_FFMPEG)
    rate = cap.get(cv2.CAP_PROP_FPS) or 25.0
    sampler, out, index = Sampler(fps), [], 0
    try:
        while cap.grab():
            t = index / rate
            index += 1
            if sampler.due(t):
                ok, image = cap.retrieve()
                assert ok
                out.append((t, image))
    finally:
        cap.release()
    return out


def _run(
    models_dir: Path, frames: list[np.ndarray] | list[tuple[float, np.ndarray]], gating: bool
) -> dict[str, object]:
    settings = load_settings(
        models={"dir": models_dir},
        ingest={"motion_gating": gating},
        kafka={"bootstrap_servers": "127.0.0.1:1"},
    )
    pipe = IngestPipeline.from_settings(settings)
    detected: list[int] = []
    real = pipe.detector.detect

    def counting(image: np.ndarray):  # type: ignore[no-untyped-def]
        detected.append(len(detected))
        return real(image)

    pipe.detector.detect = counting  # type: ignore[method-assign]
    crops, faces_at, gated = [], [], 0
    for i, item in enumerate(frames):
        t, img = item if isinstance(item, tuple) else (i * 0.2, item)
        res = pipe.process(
            CAM, Frame(CAM.camera_id, i, 1_700_000_000_000 + round(t * 1000), 0.0, t, img), KEY
        )
        gated += res.gated
        if res.faces:
            faces_at.append(i)
        crops += [o.crop for o in res.crops]
    crops += [o.crop for o in pipe.finish(CAM, KEY).crops]
    return {
        "detections_run": len(detected),
        "gated": gated,
        "faces_at": faces_at,
        "crop_frames": [c.frame_seq for c in crops],
        # Where each sent face was, to the pixel: the same frame could in principle hold another face.
        "crop_boxes": [(c.frame_seq, round(c.bbox.x), round(c.bbox.y), round(c.bbox.width)) for c in crops],
    }


def test_gate_skips_still_frames_and_misses_no_face(models_dir: Path, face_data: Path) -> None:
    frames = _scene(face_data / "face_recognition_demo" / "known_people" / "biden" / "biden.jpg")
    off = _run(models_dir, frames, gating=False)
    on = _run(models_dir, frames, gating=True)
    print(f"\nfixed scene, {FRAMES} frames: gate off {off}\ngate on {on}")
    assert off["faces_at"] and off["faces_at"][0] == ENTERS, "the scene is valid: the face is found"
    assert on["faces_at"][0] == ENTERS, "the first frame with the face is detected"
    assert on["faces_at"] == off["faces_at"], "every frame with the face is detected"
    assert on["crop_boxes"] == off["crop_boxes"], "the same best shots are sent"
    assert off["detections_run"] == FRAMES and off["gated"] == 0
    # Detected: the first frame, one per motion_max_skip_s (2 s) of stillness, the ten frames with the face
    # and the track's 2 s of ageing after it leaves; the other 17 still frames are skipped.
    assert on["gated"] >= 15 and on["detections_run"] == FRAMES - on["gated"]


def test_gate_changes_nothing_on_a_moving_camera(models_dir: Path, street_video: Path) -> None:
    """The street video is filmed by a moving camera with people throughout: the gate must cost no crop
    (what it skips there, if anything, is printed: the README quotes it)."""
    frames = _street_frames(street_video)
    off = _run(models_dir, frames, gating=False)
    on = _run(models_dir, frames, gating=True)
    print(
        f"\nstreet video, {len(frames)} analysed frames: gate off detected {off['detections_run']}, "
        f"gate on detected {on['detections_run']} and skipped {on['gated']}; "
        f"crops off {off['crop_frames']} on {on['crop_frames']}"
    )
    assert len(frames) == 21, "4.2 s of 25 fps video sampled at 5 fps"
    assert off["crop_boxes"], "the scene is valid: faces are sent"
    assert on["crop_boxes"] == off["crop_boxes"], "the same crops, from the same frames, at the same places"
    assert on["faces_at"] == off["faces_at"]
    assert on["detections_run"] == len(frames) - on["gated"]
