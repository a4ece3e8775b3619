"""Synthetic test clips made of real face photos: faces that move, enter, leave, turn and pass behind
each other, with the true face box of every actor on every frame.

Each actor is a head crop of a real photo (the test face data), pasted as an opaque rectangle, so an actor
pasted later hides the ones behind it. A face counts as present on a frame (``truth``) when at least
VISIBLE of its box is inside the frame and not hidden by actors in front.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from lfr.redact.plan import Box
from lfr.vision import Detector

VISIBLE = 0.5
Pose = tuple[float, float, float, float]  # centre x, centre y of the face, face width, horizontal squash


@dataclass
class Actor:
    name: str
    sprite: np.ndarray  # head crop, BGR
    face: Box  # the face's box inside the sprite
    pose: Callable[[int], Pose | None]  # None: not in the scene on that frame


def head_sprite(photo: np.ndarray, detector: Detector) -> tuple[np.ndarray, Box]:
    """The largest face of ``photo`` with hair and shoulders around it, and its box inside the crop."""
    faces = sorted(detector.detect(photo), key=lambda d: -d.bbox[2])
    assert faces, "no face in the actor's photo"
    x, y, w, h = faces[0].bbox
    x1, y1 = max(int(x - 0.5 * w), 0), max(int(y - 0.6 * h), 0)
    x2, y2 = min(int(x + 1.5 * w), photo.shape[1]), min(int(y + 1.6 * h), photo.shape[0])
    return photo[y1:y2, x1:x2].copy(), (x - x1, y - y1, w, h)


def background(width: int, height: int, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(60, 200, (6, 10, 3), dtype=np.uint8)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)


def _placed(actor: Actor, pose: Pose) -> tuple[np.ndarray, int, int, Box]:
    """(scaled sprite, its top-left x, y, the face box in frame pixels)."""
    cx, cy, face_w, squash = pose
    fx, fy, fw, fh = actor.face
    s = face_w / fw
    sprite = cv2.resize(
        actor.sprite,
        (max(1, round(actor.sprite.shape[1] * s * squash)), max(1, round(actor.sprite.shape[0] * s))),
        interpolation=cv2.INTER_AREA,
    )
    face = (cx - fw * s * squash / 2, cy - fh * s / 2, fw * s * squash, fh * s)
    left = round(face[0] - fx * s * squash)
    top = round(face[1] - fy * s)
    return sprite, left, top, face


def _paste(frame: np.ndarray, sprite: np.ndarray, left: int, top: int) -> tuple[int, int, int, int] | None:
    h, w = frame.shape[:2]
    x1, y1, x2, y2 = max(left, 0), max(top, 0), min(left + sprite.shape[1], w), min(top + sprite.shape[0], h)
    if x2 <= x1 or y2 <= y1:
        return None
    frame[y1:y2, x1:x2] = sprite[y1 - top : y2 - top, x1 - left : x2 - left]
    return x1, y1, x2, y2


def _visible_fraction(face: Box, width: int, height: int, covers: list[tuple[int, int, int, int]]) -> float:
    x, y, w, h = face
    mask = np.zeros((height, width), bool)
    x1, y1 = max(math.floor(x), 0), max(math.floor(y), 0)
    x2, y2 = min(math.ceil(x + w), width), min(math.ceil(y + h), height)
    if x2 <= x1 or y2 <= y1:
        return 0.0
    mask[y1:y2, x1:x2] = True
    for cx1, cy1, cx2, cy2 in covers:
        mask[cy1:cy2, cx1:cx2] = False
    return float(mask.sum()) / max(w * h, 1.0)


def render_clip(
    path: Path, actors: list[Actor], frames: int, width: int = 640, height: int = 360, fps: int = 25
) -> dict[int, dict[str, Box]]:
    """Write a near-lossless H.264 MP4 of ``actors`` (later ones in front); return frame -> name -> face."""
    bg = background(width, height)
    truth: dict[int, dict[str, Box]] = {}
    with av.open(str(path), "w", format="mp4") as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        vs.options = {"preset": "ultrafast", "crf": "12"}
        for i in range(frames):
            frame = bg.copy()
            placed: list[tuple[str, Box, tuple[int, int, int, int] | None]] = []
            for actor in actors:
                pose = actor.pose(i)
                if pose is None:
                    continue
                sprite, left, top, face = _placed(actor, pose)
                placed.append((actor.name, face, _paste(frame, sprite, left, top)))
            for k, (name, face, _) in enumerate(placed):
                covers = [r for _, _, r in placed[k + 1 :] if r is not None]
                if _visible_fraction(face, width, height, covers) >= VISIBLE:
                    truth.setdefault(i, {})[name] = face
            vf = av.VideoFrame.from_ndarray(frame, format="bgr24")
            vf.pts, vf.time_base = i, Fraction(1, fps)
            for p in vs.encode(vf):
                out.mux(p)
        for p in vs.encode(None):
            out.mux(p)
    return truth


def walk(
    start: tuple[float, float], step: tuple[float, float], face_w: float, first: int = 0, last: int = 10**9
) -> Callable[[int], Pose | None]:
    def pose(i: int) -> Pose | None:
        if not first <= i <= last:
            return None
        return start[0] + step[0] * (i - first), start[1] + step[1] * (i - first), face_w, 1.0

    return pose


def turn(centre: tuple[float, float], face_w: float, period: int) -> Callable[[int], Pose | None]:
    """Turning the head: the face narrows to a third of its width and back (a profile-like squash)."""

    def pose(i: int) -> Pose | None:
        squash = 0.35 + 0.65 * abs(math.cos(math.pi * i / period))
        return centre[0], centre[1], face_w, squash

    return pose
