"""Motion gating decisions on synthetic fixed-camera frames: still scenes skipped, anything else detected."""

from __future__ import annotations

import numpy as np

from lfr.ingest.motion import MotionGate, changed_fraction, small_grey

RNG = np.random.default_rng(3)
BACKGROUND = RNG.integers(0, 256, (1080, 1920, 3), dtype=np.uint8)


def still(seed: int) -> np.ndarray:
    """The same scene with fresh sensor noise of a few grey levels, as a real fixed camera delivers it."""
    noise = np.random.default_rng(seed).integers(-4, 5, BACKGROUND.shape)
    return np.clip(BACKGROUND.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def with_patch(image: np.ndarray, x: int, y: int, size: int = 40) -> np.ndarray:
    """A face-sized object (40 px: the smallest face the detector is set to find) entering the scene."""
    out = image.copy()
    out[y : y + size, x : x + size] = (25, 30, 40)  # dark hair and shadowed skin
    return out


def gate(**kw: float) -> MotionGate:
    return MotionGate(kw.get("fraction", 0.0002), kw.get("max_skip", 2.0))


def test_sensor_noise_is_not_motion_and_a_40px_object_is() -> None:
    a, b = small_grey(still(1)), small_grey(still(2))
    assert changed_fraction(a, b) == 0.0
    moved = changed_fraction(a, small_grey(with_patch(still(2), 900, 500)))
    assert moved >= 0.0002, moved
    assert changed_fraction(a, small_grey(still(2)[:540])) == 1.0, "a resolution change is all change"


def test_still_frames_are_skipped_and_the_first_frame_with_a_face_is_detected() -> None:
    g = gate()
    assert g.decide(still(0), 0.0, 0).reason == "first_frame"
    decisions = [g.decide(still(i), i * 0.2, 0) for i in range(1, 8)]
    assert [d.detect for d in decisions] == [False] * 7
    arrived = g.decide(with_patch(still(8), 1500, 100), 1.6, 0)
    assert arrived.detect and arrived.reason == "motion"


def test_slow_change_accumulates_against_the_last_detected_frame() -> None:
    """A small object creeping in by a few pixels per frame: each step alone is below the threshold."""
    g = gate(fraction=0.002, max_skip=100)
    g.decide(still(0), 0.0, 0)
    results = []
    for i in range(1, 30):
        frame = still(i)
        frame[500:540, 900 : 900 + 4 * i] = (25, 30, 40)  # grows 4 px per frame
        results.append(g.decide(frame, i * 0.2, 0))
    first = next(i for i, d in enumerate(results, start=1) if d.detect)
    assert first < 29 and results[first - 1].reason == "motion"


def test_live_tracks_and_the_maximum_skip_force_detection() -> None:
    g = gate(max_skip=1.0)
    g.decide(still(0), 0.0, 0)
    assert g.decide(still(1), 0.2, active_tracks=1).reason == "tracks_active"
    assert not g.decide(still(2), 0.4, 0).detect
    assert g.decide(still(3), 1.3, 0).reason == "max_skip", "at most max_skip_s since the last detection"
    assert not g.decide(still(4), 1.5, 0).detect


def test_disabled_gate_always_detects_without_looking() -> None:
    g = MotionGate(0.0002, 2.0, enabled=False)
    assert all(g.decide(still(0), t, 0).reason == "disabled" for t in (0.0, 0.2, 0.4))


def test_a_camera_can_turn_gating_on_or_off_against_the_setting() -> None:
    """Fixed and moving cameras share a deployment: the camera's own flag wins over ingest.motion_gating."""
    import os

    from lfr.core.config import load_settings
    from lfr.ingest.cameras import Camera
    from lfr.ingest.crops import CropKey
    from lfr.ingest.pipeline import IngestPipeline
    from lfr.ingest.sources import Frame
    from lfr.vision import templates
    from lfr.vision.cards import ChipTemplate

    class NoFaces:
        model_id, landmark_scheme, calls = "none:1", "mtcnn5", 0

        def detect(self, image: np.ndarray) -> list:  # type: ignore[type-arg]
            NoFaces.calls += 1
            return []

    settings = load_settings(ingest={"motion_gating": False}, kafka={"bootstrap_servers": "127.0.0.1:1"})
    pipe = IngestPipeline(
        settings,
        NoFaces(),  # type: ignore[arg-type]
        ChipTemplate(size=150, padding=0.25, points=templates.MTCNN5_DLIB_CHIP),
        "t",
    )
    key = CropKey("k", os.urandom(32))
    fixed = Camera(camera_id="fixed", deployment_id="d", url="rtsp://h/a", motion_gating=True)
    ptz = Camera(camera_id="ptz", deployment_id="d", url="rtsp://h/b")
    gated = {"fixed": 0, "ptz": 0}
    for i in range(6):
        for cam in (fixed, ptz):
            res = pipe.process(cam, Frame(cam.camera_id, i, 0, 0.0, i * 0.2, still(i)), key)
            gated[cam.camera_id] += res.gated
    assert gated == {"fixed": 5, "ptz": 0}
    assert NoFaces.calls == 1 + 6 and pipe.totals.gated == 5
