"""Motion gating with the real detector on a fixed-camera scene: a real face photo enters a still scene.

With the gate on, detection is skipped on the still frames, and the person is still detected on the first
frame where they appear and sent exactly as with the gate off.
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
from lfr.ingest.sources import Frame

pytestmark = [pytest.mark.integration, pytest.mark.shared_data]

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


def _run(models_dir: Path, frames: list[np.ndarray], gating: bool) -> dict[str, object]:
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
    for i, img in enumerate(frames):
        res = pipe.process(CAM, Frame(CAM.camera_id, i, 1_700_000_000_000 + i * 200, 0.0, i * 0.2, img), KEY)
        gated += res.gated
        if res.faces:
            faces_at.append(i)
        crops += [o.crop.frame_seq for o in res.crops]
    crops += [o.crop.frame_seq for o in pipe.finish(CAM, KEY).crops]
    return {"detections_run": len(detected), "gated": gated, "faces_at": faces_at, "crop_frames": crops}


def test_gate_skips_still_frames_and_misses_no_face(models_dir: Path, shared_faces: Path) -> None:
    frames = _scene(shared_faces / "face_recognition_demo" / "known_people" / "biden" / "biden.jpg")
    off = _run(models_dir, frames, gating=False)
    on = _run(models_dir, frames, gating=True)
    print(f"\nfixed scene, {FRAMES} frames: gate off {off}\ngate on {on}")
    assert off["faces_at"] and off["faces_at"][0] == ENTERS, "the scene is valid: the face is found"
    assert on["faces_at"][0] == ENTERS, "the first frame with the face is detected"
    assert on["faces_at"] == off["faces_at"], "every frame with the face is detected"
    assert on["crop_frames"] == off["crop_frames"], "the same best shots are sent"
    assert off["detections_run"] == FRAMES and off["gated"] == 0
    # Detected: the first frame, one per motion_max_skip_s (2 s) of stillness, the ten frames with the face
    # and the track's 2 s of ageing after it leaves; the other 17 still frames are skipped.
    assert on["gated"] >= 15 and on["detections_run"] == FRAMES - on["gated"]
