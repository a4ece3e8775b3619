"""The two passes of a redaction: find and track every face, then draw the masks and write the output.

Why two passes over a video rather than one: the cover for a frame depends on detections after it (a face
first detected at frame 40 must be covered from before frame 40, and interpolation needs the next
detection), so masks can only be drawn once all detections are known. Decoding twice costs a few
milliseconds a frame; holding the footage in memory instead would not scale to an hour of 1080p. The first
pass keeps at most one detection stride of decoded frames, for the in-between detections the schedule asks
for, and per track only its detections, one thumbnail and a few embeddings (when wanted).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from av.video.frame import VideoFrame

from lfr.core.config import Settings
from lfr.redact.masks import Style, mask_image, mask_planes, restore_regions, save_regions
from lfr.redact.media import MediaError, WriteStats, decode, frame_planes, probe, rewrite
from lfr.redact.plan import CoverRules, clip, frame_plan, grow, restore_plan
from lfr.redact.schedule import detection_stride, refine
from lfr.redact.tracks import Track, Tracker
from lfr.vision import Detection, Detector, FaceAnalyzer, load_detector
from lfr.vision.boxes import iou_matrix

Progress = Callable[[str, float], None]
THUMB_PX = 96
# Embeddings kept per track for recognising kept subjects: its largest faces, and only faces big enough for
# the embedder to say anything (a 20 px face is covered, never recognised).
MAX_SAMPLES = 5
MIN_SAMPLE_PX = 32
# A shot cut: the mean absolute difference of two consecutive frames' brightness, sampled every CUT_STEP
# pixels, above CUT_DIFF grey levels. Measured: camera and subject motion 4-12 on the shared videos, their
# three cuts 24-26.
CUT_STEP = 8
CUT_DIFF = 18.0


class RedactError(ValueError):
    """The redaction cannot be done as asked; the message says why."""


# YuNet's own score threshold for redaction (its live default is 0.6). Measured on the Hamilton clip's
# first 100 frames against the MTCNN checker (tests/integration/redact/checks.py): 11 faces found again at
# 0.6, none at 0.3.
YUNET_SCORE = 0.3


def redaction_settings(settings: Settings, landmarks: bool = True) -> Settings:
    """A copy of ``settings`` whose detector looks for faces down to redact.min_face_px at redaction's lower
    thresholds: MTCNN's stage thresholds (redact.thresholds, the reference cascade: no stricter finest
    level, small faces are what matters) and YuNet's score threshold (YUNET_SCORE), whichever card is
    configured. YuNet's frame shrink comes from redact.yunet_reliable_face_px, not the live path's
    detector.yunet.reliable_face_px: redaction trades speed against recall apart from live detection.

    ``landmarks=False`` when no face will be embedded (no kept subjects to recognise): YuNet then keeps its
    own points instead of running O-Net on every face it finds, since covering a face needs only its box.
    """
    r = settings.redact
    update: dict[str, object] = {
        "min_face_px": r.min_face_px,
        "thresholds": r.thresholds,
        "first_level_thresholds": (),
    }
    yunet = getattr(settings.detector, "yunet", None)
    if yunet is not None:
        update["yunet"] = yunet.model_copy(
            update={
                "score_threshold": min(yunet.score_threshold, YUNET_SCORE),
                "reliable_face_px": r.yunet_reliable_face_px,
            }
            | ({} if landmarks else {"landmarks": "yunet"})
        )
    det = settings.detector.model_copy(update=update)
    models = settings.models
    if r.detector:
        models = models.model_copy(update={"detector": r.detector})
    return settings.model_copy(update={"detector": det, "models": models})


def seed_settings(settings: Settings) -> Settings | None:
    """Redaction settings whose detector card is redact.seed_detector (None when no seed detector is set)."""
    r = settings.redact
    if not r.seed_detector:
        return None
    update: dict[str, object] = {"detector": r.seed_detector}
    if r.seed_thresholds is not None:
        update["thresholds"] = r.seed_thresholds
    return redaction_settings(settings.model_copy(update={"redact": r.model_copy(update=update)}))


def seed_stride(fps: float, interval_s: float, stride: int) -> int:
    """Frames between seed detections: redact.seed_interval_s in whole detection strides (at least one), so
    every seed run falls on a scheduled detection."""
    return stride * max(1, round(fps * interval_s / stride))


# A seed detection overlapping a detection of the main detector this much is the same face.
SEED_SAME_FACE_IOU = 0.3


def seed_only(seeded: Sequence[Detection], main: Sequence[Detection]) -> list[Detection]:
    """The seed detector's faces that the main detector did not find on the same frame."""
    if not seeded or not main:
        return list(seeded)
    ious = iou_matrix(
        np.asarray([d.xyxy for d in seeded], np.float64), np.asarray([d.xyxy for d in main], np.float64)
    )
    return [d for d, row in zip(seeded, ious, strict=True) if float(row.max()) < SEED_SAME_FACE_IOU]


def refine_score(settings: Settings, detector: Detector) -> float:
    """redact.refine_score on the detector's own scale: capped at its card's confident score (detectors
    score differently: MTCNN's confident faces reach 0.9, YuNet's 0.8)."""
    card = getattr(detector, "card", None)
    confident = getattr(card, "confident_score", None)
    return (
        min(settings.redact.refine_score, confident)
        if confident is not None
        else settings.redact.refine_score
    )


@dataclass
class Analysis:
    kind: Literal["video", "image"]
    width: int
    height: int
    frames: int
    fps: float | None
    duration_s: float | None
    stride: int
    detected_frames: int
    tracks: list[Track]
    detector_model: str
    audio: str | None = None
    cuts: list[int] = field(default_factory=list)  # first frame of each shot after the first
    refine_score: float | None = None
    seed_every: int = 0  # frames between seed detections (0: no seed detector)
    seed_frames: int = 0


@dataclass(frozen=True)
class RenderStats:
    frames: int
    frames_touched: int
    boxes_drawn: int
    audio: str


class FaceFinder:
    """Detects and tracks every face of a video or still; optionally keeps thumbnails and embeddings."""

    def __init__(
        self,
        settings: Settings,
        detector: Detector | None = None,
        analyzer: FaceAnalyzer | None = None,
        want_thumbnails: bool = False,
    ) -> None:
        self.settings = settings
        self.cfg = settings.redact
        self.detector = detector or load_detector(
            redaction_settings(settings, landmarks=analyzer is not None)
        )
        seeding = seed_settings(settings)
        self.seed: Detector | None = load_detector(seeding) if seeding is not None else None
        self.analyzer = analyzer  # set when kept subjects must be recognised
        self._refine_score = refine_score(settings, self.detector)
        self.want_thumbnails = want_thumbnails

    def model_id(self) -> str:
        """The detector's model id, and the seed detector's when one runs beside it."""
        if self.seed is None:
            return self.detector.model_id
        return f"{self.detector.model_id} seed:{self.seed.model_id}"

    # ---- per detected frame ------------------------------------------------------------------------

    def _observe(self, image: np.ndarray, dets: Sequence[Detection], owners: Sequence[Track]) -> None:
        """Thumbnails and embeddings of one frame's faces, for the tracks they belong to."""
        if self.want_thumbnails:
            for d, t in zip(dets, owners, strict=True):
                rank = d.bbox[2] * d.score
                if rank > t.thumbnail_rank:
                    t.thumbnail, t.thumbnail_rank = thumbnail(image, d.bbox), rank
        if self.analyzer is None:
            return
        wanted = [
            (d, t)
            for d, t in zip(dets, owners, strict=True)
            if d.bbox[2] >= MIN_SAMPLE_PX and len(t.embeddings) < MAX_SAMPLES
        ]
        if wanted:
            emb = self.analyzer.embedder
            chips = [emb.align(image, d.landmarks, self.analyzer.scheme) for d, _ in wanted]
            for (_, t), vec in zip(wanted, emb.embed(chips), strict=True):
                t.embeddings.append(vec)

    # ---- stills ----------------------------------------------------------------------------------------

    def analyse_image(self, image: np.ndarray) -> Analysis:
        dets = self.detector.detect(image)
        if self.seed is not None:  # one frame: both detectors, nothing to follow between seed runs
            dets = [*dets, *seed_only(self.seed.detect(image), dets)]
        dets = sorted(dets, key=lambda d: (d.bbox[0], d.bbox[1]))
        tracker = Tracker(max_gap=0)
        owners = tracker.update(0, [d.bbox for d in dets], [d.score for d in dets])
        self._observe(image, dets, owners)
        h, w = image.shape[:2]
        return Analysis(
            "image",
            w,
            h,
            1,
            None,
            None,
            1,
            1,
            tracker.tracks,
            self.model_id(),
            seed_frames=int(bool(self.seed)),
        )

    # ---- video -----------------------------------------------------------------------------------------

    def analyse_video(self, path: Path, progress: Progress | None = None) -> Analysis:
        info = probe(path)
        if info.duration_s > self.cfg.max_video_s:
            raise RedactError(
                f"video {Path(path).name} is {info.duration_s:.1f} s; footage longer than "
                f"{self.cfg.max_video_s:g} s is refused (redact.max_video_s): split it and redact each part"
            )
        stride = detection_stride(info.fps, self.cfg.detect_interval_s)
        seed_every = seed_stride(info.fps, self.cfg.seed_interval_s, stride) if self.seed is not None else 0
        # A face only the seed detector finds is seen once per seed_every frames: its track must survive
        # that gap, and it is covered that much longer before its first and after its last sighting.
        seed_reach = seed_every + self.cfg.hold_frames if seed_every else 0
        tracker = Tracker(max_gap=max(2 * stride, seed_every) + self.cfg.hold_frames)
        window: dict[int, VideoFrame] = {}
        images: dict[int, np.ndarray] = {}
        found: dict[int, list[Detection]] = {}
        # Seed-only faces per frame: fed to the tracker but not to the refinement, whose in-between
        # detections use the main detector only and so could never confirm them.
        extra: dict[int, list[Detection]] = {}
        detected = 0
        seeded = 0
        last_key = -1

        def detect_at(i: int) -> list[Detection]:
            nonlocal detected
            images[i] = window[i].to_ndarray(format="bgr24")
            detected += 1
            return self.detector.detect(images[i])

        def settle(key: int, seed: bool = False) -> None:
            """Detect ``key``, fill in the frames since the last key as needed, feed the tracker in order."""
            nonlocal last_key, seeded
            found[key] = detect_at(key)
            if seed and self.seed is not None:
                seeded += 1
                extra[key] = seed_only(self.seed.detect(images[key]), found[key])
            if last_key >= 0:
                refine(last_key, key, found, detect_at, self._refine_score, tracker.expected(key))
            for f in sorted(k for k in found if k > last_key):
                main, more = found[f], extra.pop(f, [])
                dets = [*main, *more]
                owners = tracker.update(f, [d.bbox for d in dets], [d.score for d in dets])
                for t in owners[len(main) :]:
                    t.reach = max(t.reach, seed_reach)
                self._observe(images[f], dets, owners)
            for f in [k for k in found if k < key]:
                del found[f]
            images.clear()
            for f in [k for k in window if k < key]:
                del window[f]
            last_key = key

        n = 0
        cuts: list[int] = []
        previous: np.ndarray | None = None
        for n, frame in enumerate(decode(path), start=1):
            i = n - 1
            window[i] = frame
            sig = brightness_signature(frame)
            if previous is not None and is_cut(previous, sig):
                # Detect both sides of the cut and start every track afresh after it.
                cuts.append(i)
                if i - 1 > last_key:
                    settle(i - 1)
                tracker.cut()
                settle(i, seed=True)
            elif i % stride == 0:
                settle(i, seed=seed_every > 0 and i % seed_every == 0)
            previous = sig
            if progress is not None and info.frames and i % stride == 0:
                progress("analyse", min(i / info.frames, 1.0))
        if n == 0:
            raise MediaError(f"no frame could be decoded from {Path(path).name}")
        if last_key != n - 1:
            settle(n - 1)
        return Analysis(
            "video",
            info.width,
            info.height,
            n,
            info.fps,
            info.duration_s,
            stride,
            detected,
            tracker.tracks,
            self.model_id(),
            info.audio_codec,
            cuts,
            self._refine_score,
            seed_every,
            seeded,
        )


def brightness_signature(frame: VideoFrame) -> np.ndarray:
    """A coarse grid of the frame's brightness (its first plane), read without copying the frame."""
    plane = frame.planes[0]
    y = np.frombuffer(memoryview(plane), np.uint8).reshape(plane.height, plane.line_size)
    return y[::CUT_STEP, : plane.width : CUT_STEP].astype(np.int16)


def is_cut(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and float(np.abs(a - b).mean()) > CUT_DIFF


def thumbnail(image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """A square THUMB_PX crop around a face with some context, for the preview sheet."""
    h, w = image.shape[:2]
    c = clip(grow(box, 0.25), w, h)
    if c is None:
        return np.zeros((THUMB_PX, THUMB_PX, 3), np.uint8)
    x, y, bw, bh = c
    crop = image[int(y) : math.ceil(y + bh), int(x) : math.ceil(x + bw)]
    return cv2.resize(crop, (THUMB_PX, THUMB_PX), interpolation=cv2.INTER_AREA)


def cover_rules(settings: Settings, stride: int) -> CoverRules:
    r = settings.redact
    return CoverRules(margin=r.margin, motion_margin=r.motion_margin, extend=stride + r.hold_frames)


def render_video(
    settings: Settings,
    src: Path,
    dst: Path,
    analysis: Analysis,
    redacted: set[int],
    style: Style,
    progress: Progress | None = None,
) -> RenderStats:
    """Write ``dst`` with every frame of ``src``, the redacted tracks' boxes covered."""
    rules = cover_rules(settings, analysis.stride)
    tracks = [t for t in analysis.tracks if t.track_id in redacted]
    plan = frame_plan(tracks, rules, analysis.frames, analysis.width, analysis.height, analysis.cuts)
    keep = restore_plan([t for t in analysis.tracks if t.track_id not in redacted], tracks)
    drawn = 0

    def transform(i: int, frame: VideoFrame) -> VideoFrame:
        nonlocal drawn
        boxes = plan.get(i)
        if boxes:
            if frame.format.name not in ("yuv420p", "yuvj420p", "yuv422p", "yuv444p"):
                pts, tb = frame.pts, frame.time_base
                frame = frame.reformat(format="yuv420p")
                frame.pts, frame.time_base = pts, tb
            planes = frame_planes(frame)
            saved = save_regions(planes, frame.width, frame.height, keep.get(i, []))
            mask_planes(planes, frame.width, frame.height, boxes, style)
            restore_regions(planes, saved)
            drawn += len(boxes)
        if progress is not None and analysis.frames and i % 25 == 0:
            progress("render", min(i / analysis.frames, 1.0))
        return frame

    r = settings.redact
    stats: WriteStats = rewrite(src, dst, transform, preset=r.x264_preset, crf=r.crf)
    if stats.frames != analysis.frames:
        raise MediaError(
            f"{Path(src).name} decoded to {analysis.frames} frames the first time "
            f"and {stats.frames} the second"
        )
    return RenderStats(stats.frames, len(plan), drawn, stats.audio)


def render_image(
    settings: Settings, image: np.ndarray, analysis: Analysis, redacted: set[int], style: Style
) -> RenderStats:
    """Cover the redacted faces of a still in place (margin only: a still has no motion to allow for)."""
    m = settings.redact.margin
    covered = [t for t in analysis.tracks if t.track_id in redacted]
    boxes = [grow(t.observations[0].box, m) for t in covered]
    keep = restore_plan([t for t in analysis.tracks if t.track_id not in redacted], covered).get(0, [])
    h, w = image.shape[:2]
    saved = save_regions([image], w, h, keep)
    mask_image(image, boxes, style)
    restore_regions([image], saved)
    return RenderStats(1, 1 if boxes else 0, len(boxes), "none")
