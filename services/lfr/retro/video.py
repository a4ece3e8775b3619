"""Faces of a video: sample frames, follow faces across frames by box overlap, keep each track's best shot.

Why tracks and best shots: a person walking past a camera appears in dozens of frames; searching every
frame would return the same candidates many times and multiply the chance of a spurious one. One search per
track, with its sharpest, most frontal, largest face (the quality score), is what an investigator wants to
review. The tracker is a greedy IoU matcher (the same idea as the live ingest tracker): cheap, explainable,
and good enough at the sampled rate for the slow motion of faces in CCTV.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from lfr.vision import AnalysedFace, FaceAnalyzer
from lfr.vision.boxes import iou_matrix
from lfr.vision.scene_cut import DEFAULT_MIN_DISTANCE, SceneCutDetector

VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm", ".mpg", ".mpeg", ".ts", ".wmv"})


class VideoError(ValueError):
    """The video cannot be opened or decoded."""


class VideoTooLongError(VideoError):
    """Footage longer than ``retro.max_video_s``: refused whole, never searched in part.

    A search of only the first minutes would return candidate lists that look complete; an investigator
    must split long footage knowingly (and record each part as its own search).
    """


def _too_long(path: Path, seconds: float, limit: float, how: str) -> VideoTooLongError:
    return VideoTooLongError(
        f"video {Path(path).name} {how} {seconds:.1f} s; footage longer than {limit:g} s is refused "
        "(retro.max_video_s): split it and search each part"
    )


def sample_frames(
    path: Path, fps: float, max_seconds: float | None = None, max_pixels: int | None = None
) -> Iterator[tuple[int, float, np.ndarray]]:
    """(frame index, time in seconds, BGR frame) at about ``fps`` frames per second of video time.

    A video whose frames are larger than ``max_pixels`` is refused from its header, before a frame is
    decoded: an uploaded file can claim frames of hundreds of megabytes each.
    """
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise VideoError(f"cannot open video {Path(path).name}")
    try:
        width, height = cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)
        if max_pixels is not None and np.isfinite(width * height) and width * height > max_pixels:
            raise VideoError(
                f"{Path(path).name} has {int(width)}x{int(height)} frames; the limit is {max_pixels:,} "
                "pixels (detector.max_image_pixels)"
            )
        src_fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
        if not np.isfinite(src_fps) or src_fps <= 0:
            src_fps = 25.0
        step = max(1, round(src_fps / fps))
        frames = cap.get(cv2.CAP_PROP_FRAME_COUNT)
        if max_seconds is not None and np.isfinite(frames) and frames / src_fps > max_seconds:
            raise _too_long(path, frames / src_fps, max_seconds, "is")
        i = 0
        got_any = False
        while True:
            ok = cap.grab()
            if not ok:
                break
            t = i / src_fps
            if max_seconds is not None and (i + 1) / src_fps > max_seconds:
                # The container understated its length: refuse rather than return a partial search. Frame
                # i ends at (i + 1) / fps, so the limit is the same as the frame-count check above.
                raise _too_long(path, (i + 1) / src_fps, max_seconds, "runs past")
            if i % step == 0:
                ok, frame = cap.retrieve()
                if ok and frame is not None:
                    got_any = True
                    yield i, t, frame
            i += 1
        if not got_any:
            raise VideoError(f"no frame could be decoded from {Path(path).name}")
    finally:
        cap.release()


@dataclass
class Track:
    track_id: int
    last_box: np.ndarray  # x1, y1, x2, y2
    last_seen: float
    frames: int = 0
    best: AnalysedFace | None = None
    best_frame: int = 0
    best_time: float = 0.0
    history: list[int] = field(default_factory=list)


class IouTracker:
    """Greedy IoU association of this frame's faces with live tracks; tracks end after ``max_age_s``."""

    def __init__(self, iou: float = 0.3, max_age_s: float = 2.0) -> None:
        self.iou = iou
        self.max_age_s = max_age_s
        self.live: list[Track] = []
        self.done: list[Track] = []
        self._next = 1

    def update(self, faces: list[AnalysedFace], frame_index: int, t: float) -> list[int]:
        """Assign each face to a track (returns the track ids in ``faces`` order) and keep best shots."""
        for tr in [tr for tr in self.live if t - tr.last_seen > self.max_age_s]:
            self.live.remove(tr)
            self.done.append(tr)
        boxes = np.array([f.detection.xyxy for f in faces], dtype=np.float64).reshape(-1, 4)
        ids = [0] * len(faces)
        if self.live and len(faces):
            m = iou_matrix(np.stack([tr.last_box for tr in self.live]), boxes)
            taken_t: set[int] = set()
            taken_f: set[int] = set()
            for flat in np.argsort(-m, axis=None):
                ti, fi = divmod(int(flat), m.shape[1])
                if m[ti, fi] < self.iou:
                    break
                if ti in taken_t or fi in taken_f:
                    continue
                taken_t.add(ti)
                taken_f.add(fi)
                ids[fi] = self._extend(self.live[ti], faces[fi], boxes[fi], frame_index, t)
        for fi, face in enumerate(faces):
            if ids[fi] == 0:
                tr = Track(self._next, boxes[fi], t)
                self._next += 1
                self.live.append(tr)
                ids[fi] = self._extend(tr, face, boxes[fi], frame_index, t)
        return ids

    @staticmethod
    def _extend(tr: Track, face: AnalysedFace, box: np.ndarray, frame_index: int, t: float) -> int:
        tr.last_box, tr.last_seen = box, t
        tr.frames += 1
        tr.history.append(frame_index)
        if tr.best is None or face.quality.score > tr.best.quality.score:
            tr.best, tr.best_frame, tr.best_time = face, frame_index, t
        return tr.track_id

    def end_all(self) -> None:
        """A new shot began: every live track ends (its faces stay in ``done``)."""
        self.done.extend(self.live)
        self.live = []

    def finish(self) -> list[Track]:
        """Every track, ended or live, in order of first appearance."""
        tracks = self.done + self.live
        self.done, self.live = [], []
        return sorted(tracks, key=lambda tr: tr.track_id)


@dataclass(frozen=True)
class VideoFaces:
    tracks: list[Track]
    frames_analysed: int


def video_best_shots(
    analyzer: FaceAnalyzer,
    path: Path,
    fps: float = 5.0,
    iou: float = 0.3,
    max_age_s: float = 2.0,
    max_seconds: float | None = None,
    max_pixels: int | None = None,
    scene_cut_distance: float | None = DEFAULT_MIN_DISTANCE,
) -> VideoFaces:
    """Best shot of each face track in a video file (frames sampled at ``fps``); a scene cut
    (lfr.vision.scene_cut) ends every track, so no track, and no best shot, mixes two shots' people."""
    tracker = IouTracker(iou, max_age_s)
    cuts = SceneCutDetector(scene_cut_distance)
    n = 0
    for index, t, frame in sample_frames(path, fps, max_seconds, max_pixels):
        if cuts.is_cut(frame):
            tracker.end_all()
        tracker.update(analyzer.analyse(frame), index, t)
        n += 1
    return VideoFaces([tr for tr in tracker.finish() if tr.best is not None], n)
