"""Scene cuts: a new shot is told from a changed picture, not from people moving in the same one."""

from __future__ import annotations

import numpy as np

from lfr.vision.scene_cut import SceneCutDetector


def _scene(bgr: tuple[int, int, int], seed: int, person_x: int | None = None) -> np.ndarray:
    """A 1080p frame of one colour with texture noise; optionally a grey 'person' block at ``person_x``."""
    rng = np.random.default_rng(seed)
    img = np.clip(np.array(bgr, np.int16) + rng.integers(-12, 13, (1080, 1920, 3)), 0, 255).astype(np.uint8)
    if person_x is not None:
        img[300:900, person_x : person_x + 250] = (90, 90, 90)
    return img


def test_a_cut_between_two_shots_is_found_and_people_walking_are_not() -> None:
    det = SceneCutDetector()
    street = [_scene((40, 120, 60), seed=i, person_x=200 + 60 * i) for i in range(6)]  # someone walks across
    assert [det.is_cut(f) for f in street] == [False] * 6
    assert det.last_distance is not None and det.last_distance < 0.2
    assert det.is_cut(_scene((30, 40, 170), seed=9)) is True  # another shot: other colours everywhere
    assert det.last_distance is not None and det.last_distance >= 0.3
    assert det.is_cut(_scene((30, 40, 170), seed=10)) is False  # and it goes on


def test_the_first_frame_is_no_cut_and_the_bound_can_be_turned_off() -> None:
    det = SceneCutDetector()
    assert det.is_cut(_scene((40, 120, 60), seed=0)) is False and det.last_distance is None
    off = SceneCutDetector(None)
    assert off.is_cut(_scene((40, 120, 60), seed=0)) is False
    assert off.is_cut(_scene((30, 40, 170), seed=1)) is False
    # A greyscale (infrared) picture has no hue: a cut shows in brightness.
    ir = SceneCutDetector()
    assert ir.is_cut(np.full((360, 640), 40, np.uint8)) is False
    assert ir.is_cut(np.full((360, 640), 41, np.uint8)) is False
    assert ir.is_cut(np.full((360, 640), 220, np.uint8)) is True
