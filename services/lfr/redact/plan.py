"""The boxes to cover on every frame, from each track's detections: interpolation, margin and hold.

The safety rules, per track:

* between two detections the box moves in a straight line, grown by ``margin`` of its size on each side
  plus ``motion_margin`` per frame of distance to the nearest detection (the further from a measured
  position, the less certain the face's place);
* before its first and after its last detection the track is covered for ``extend`` more frames (the
  detection stride plus a hold; longer for a track whose ``reach`` says so), moving at its measured
  velocity (capped) and growing the same way, so a face that enters, leaves, turns away or is missed
  between detections is still covered;
* boxes are clipped to the frame; a face that leaves the frame simply stops being drawn;
* nothing is carried across a shot cut: the hold ends at the last frame of the track's shot.

A kept face stays visible even where a covered box reaches over it (a false detection on the kept
person's hand or microphone, grown by its margin and hold): ``restore_plan`` gives the kept faces' own
boxes (interpolated between their detections, grown by RESTORE_MARGIN) whose pixels are put back after
masking, except on frames where a covered track's own box is centred inside one (someone else at the kept
face's place, e.g. passing in front: the mask wins).

Everything is computed from detections alone, so a plan is the same for the same input and settings.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from lfr.redact.tracks import Box, Observation, Track, centre

# Extrapolated motion is capped at this many face widths per frame (a detection glitch must not fling
# a hold box across the frame, away from where the face was last seen).
MAX_SPEED = 0.25


# A kept face is put back with this much of its box around it (an embedder's chip reaches beyond the
# detector's box: with the bare box, 30 of 37 kept faces on the Hamilton clip were still recognised by
# SFace, as the neighbouring masks cut into the chip).
RESTORE_MARGIN = 0.2


@dataclass(frozen=True)
class CoverRules:
    margin: float
    motion_margin: float
    extend: int  # frames covered before the first and after the last detection


def grow(box: Box, fraction: float) -> Box:
    x, y, w, h = box
    dx, dy = w * fraction, h * fraction
    return x - dx, y - dy, w + 2 * dx, h + 2 * dy


def clip(box: Box, width: int, height: int) -> Box | None:
    x, y, w, h = box
    x1, y1 = max(x, 0.0), max(y, 0.0)
    x2, y2 = min(x + w, float(width)), min(y + h, float(height))
    if x2 <= x1 or y2 <= y1:
        return None
    return x1, y1, x2 - x1, y2 - y1


def _lerp(a: Box, b: Box, t: float) -> Box:
    return (
        a[0] + (b[0] - a[0]) * t,
        a[1] + (b[1] - a[1]) * t,
        a[2] + (b[2] - a[2]) * t,
        a[3] + (b[3] - a[3]) * t,
    )


def _velocity(a: Observation, b: Observation) -> tuple[float, float]:
    """Centre motion per frame from ``a`` to ``b``, capped at MAX_SPEED face widths per frame."""
    (ax, ay), (bx, by) = centre(a.box), centre(b.box)
    dt = max(abs(b.frame - a.frame), 1)
    vx, vy = (bx - ax) / dt, (by - ay) / dt
    cap = MAX_SPEED * max(a.box[2], b.box[2])
    speed = (vx * vx + vy * vy) ** 0.5
    if speed > cap > 0:
        vx, vy = vx * cap / speed, vy * cap / speed
    return vx, vy


def _shift(box: Box, vx: float, vy: float, frames: int) -> Box:
    return box[0] + vx * frames, box[1] + vy * frames, box[2], box[3]


def shot_of(first: int, last: int, n_frames: int, cuts: Sequence[int]) -> tuple[int, int]:
    """First and last frame of the shot holding frames ``first``..``last`` (a cut = a shot's first frame)."""
    start = max((c for c in cuts if c <= first), default=0)
    end = min((c for c in cuts if c > last), default=n_frames) - 1
    return start, end


def track_boxes(
    track: Track, rules: CoverRules, n_frames: int, width: int, height: int, cuts: Sequence[int] = ()
) -> Iterator[tuple[int, Box]]:
    """(frame, box to cover) for every frame the track must be covered on."""
    obs = track.observations
    v_in = _velocity(obs[0], obs[1]) if len(obs) > 1 else (0.0, 0.0)
    v_out = _velocity(obs[-2], obs[-1]) if len(obs) > 1 else (0.0, 0.0)
    shot_start, shot_end = shot_of(obs[0].frame, obs[-1].frame, n_frames, cuts)
    extend = max(rules.extend, track.reach)
    start = max(shot_start, obs[0].frame - extend)
    end = min(shot_end, obs[-1].frame + extend)
    i = 0
    for f in range(start, end + 1):
        if f <= obs[0].frame:
            d = obs[0].frame - f
            box = _shift(obs[0].box, v_in[0], v_in[1], -d)
        elif f >= obs[-1].frame:
            d = f - obs[-1].frame
            box = _shift(obs[-1].box, v_out[0], v_out[1], d)
        else:
            while obs[i + 1].frame <= f:
                i += 1
            a, b = obs[i], obs[i + 1]
            d = min(f - a.frame, b.frame - f)
            box = _lerp(a.box, b.box, (f - a.frame) / (b.frame - a.frame))
        clipped = clip(grow(box, rules.margin + rules.motion_margin * d), width, height)
        if clipped is not None:
            yield f, clipped


def frame_plan(
    tracks: Iterable[Track],
    rules: CoverRules,
    n_frames: int,
    width: int,
    height: int,
    cuts: Sequence[int] = (),
) -> dict[int, list[Box]]:
    """Frame index -> boxes to cover (frames with nothing to cover are absent)."""
    plan: dict[int, list[Box]] = {}
    for track in tracks:
        for f, box in track_boxes(track, rules, n_frames, width, height, cuts):
            plan.setdefault(f, []).append(box)
    return plan


def track_cores(track: Track) -> Iterator[tuple[int, Box]]:
    """(frame, box) from a track's first to its last detection: interpolated, no margin, no hold."""
    obs = track.observations
    for a, b in itertools.pairwise(obs):
        for f in range(a.frame, b.frame):
            yield f, _lerp(a.box, b.box, (f - a.frame) / (b.frame - a.frame))
    yield obs[-1].frame, obs[-1].box


def _centre_inside(box: Box, region: Box) -> bool:
    cx, cy = centre(box)
    return region[0] <= cx <= region[0] + region[2] and region[1] <= cy <= region[1] + region[3]


def restore_plan(kept: Iterable[Track], covered: Iterable[Track]) -> dict[int, list[Box]]:
    """Frame index -> kept faces' boxes to put back after masking (see the module docstring)."""
    others: dict[int, list[Box]] = {}
    for t in covered:
        for f, box in track_cores(t):
            others.setdefault(f, []).append(box)
    plan: dict[int, list[Box]] = {}
    for t in kept:
        for f, box in track_cores(t):
            if not any(_centre_inside(o, box) for o in others.get(f, [])):
                plan.setdefault(f, []).append(grow(box, RESTORE_MARGIN))
    return plan
