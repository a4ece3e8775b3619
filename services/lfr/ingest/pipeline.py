"""IngestPipeline: frame in, sealed best-shot FaceCrops out, synchronously and without I/O.

Why a pure, synchronous core: the service runs it in a thread pool (detection is CPU-bound and ONNX
Runtime releases the GIL), while tests and ``lfr bench ingest`` drive exactly the same code frame by frame
on one thread. Everything stateful per camera (tracker, best-shot) lives here; frames of one camera must be
processed in order, one at a time, which the service guarantees with one task per camera.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from lfr.core.config import Settings
from lfr.ingest.bestshot import BestShotSelector, Outcome, Release
from lfr.ingest.cameras import Camera
from lfr.ingest.crops import CropKey, build_crop
from lfr.ingest.motion import MotionGate
from lfr.ingest.sources import Frame
from lfr.ingest.tracker import IouTracker
from lfr.v1 import crop_pb2
from lfr.v1.crop_pb2 import FaceCrop
from lfr.vision.align import AlignmentError, align
from lfr.vision.cards import ChipTemplate, find_card
from lfr.vision.detectors.base import Detection, Detector
from lfr.vision.quality import QualityReport, assess, for_detector
from lfr.vision.scene_cut import SceneCutDetector


@dataclass(frozen=True)
class Shot:
    """A face held by best-shot selection until it is sent (chip only; the frame is not kept)."""

    frame_seq: int
    captured_ms: int
    mono: float
    stream_s: float
    detection: Detection
    quality: QualityReport
    chip: np.ndarray


class SendReason:
    """Why a crop was sent; on the wire as ``FaceCrop.send_reason`` (``WIRE_SEND_REASON``)."""

    BEST_SHOT = "best_shot"  # a face that passed the gate, sent as it was seen
    HELD = "held"  # a better face held by best-shot selection until the track's interval passed
    REFRESH = "refresh"  # a steady track's later view, after ingest.best_shot_refresh_s
    UNPASSED_LIVE = "unpassed_live"  # a live track's best unpassed face, after ingest.unpassed_send_after_s
    UNPASSED_END = "unpassed_end"  # an ended track's best unpassed face


WIRE_SEND_REASON: dict[str, crop_pb2.SendReason] = {
    SendReason.BEST_SHOT: crop_pb2.SEND_REASON_BEST_SHOT,
    SendReason.HELD: crop_pb2.SEND_REASON_HELD,
    SendReason.REFRESH: crop_pb2.SEND_REASON_REFRESH,
    SendReason.UNPASSED_LIVE: crop_pb2.SEND_REASON_UNPASSED_LIVE,
    SendReason.UNPASSED_END: crop_pb2.SEND_REASON_UNPASSED_END,
}


@dataclass
class OutgoingCrop:
    crop: FaceCrop
    captured_mono: float  # for capture-to-publish latency
    reason: str = SendReason.BEST_SHOT
    held_s: float = 0.0  # stream time from the face's frame to the frame that sent it


@dataclass
class FrameResult:
    camera_id: str
    frame_seq: int
    faces: int = 0
    tracks_started: int = 0
    detect_s: float = 0.0
    gated: bool = False  # detection skipped by motion gating: nothing changed since the last detected frame
    scene_cut: bool = False  # the frame starts a new shot: every live track ended before it
    outcomes: Counter[str] = field(default_factory=Counter)
    crops: list[OutgoingCrop] = field(default_factory=list)
    # Tracks that ended during this frame: (track id, eligible for coverage, searched at least once).
    ended_tracks: list[tuple[str, bool, bool]] = field(default_factory=list)

    @property
    def rejected_quality(self) -> int:
        return self.outcomes["rejected_quality"]


@dataclass
class PipelineTotals:
    """Counts across all cameras since start (counts only: nothing about any face)."""

    frames: int = 0
    gated: int = 0
    scene_cuts: int = 0
    faces: int = 0
    rejected_quality: int = 0
    tracks: int = 0
    crops: int = 0
    detect_s: float = 0.0
    crops_per_ended_track: Counter[int] = field(default_factory=Counter)
    tracks_eligible: int = 0  # a face >= quality.min_face_px for >= COVERAGE_MIN_S
    tracks_eligible_searched: int = 0
    fallback_crops: int = 0  # unpassed faces sent, while their track lived or at its end
    fallback_crops_live: int = 0  # of those, sent while the track lived (ingest.unpassed_send_after_s)
    refresh_crops: int = 0  # a steady track's later views (ingest.best_shot_refresh_s)

    def crops_per_track_median(self) -> float | None:
        """Median crops over ended tracks that sent at least one crop."""
        values = [k for k, n in self.crops_per_ended_track.items() if k > 0 for _ in range(n)]
        return float(statistics.median(values)) if values else None

    def as_dict(self) -> dict[str, object]:
        ended = sum(self.crops_per_ended_track.values())
        return {
            "frames": self.frames,
            "frames_gated": self.gated,
            "faces": self.faces,
            "rejected_quality": self.rejected_quality,
            "tracks": self.tracks,
            "crops": self.crops,
            "tracks_ended": ended,
            "tracks_without_crop": self.crops_per_ended_track.get(0, 0),
            "crops_per_track_median": self.crops_per_track_median(),
            "crops_per_track_max": max((k for k in self.crops_per_ended_track if k), default=0),
            "crops_per_track_histogram": {str(k): v for k, v in sorted(self.crops_per_ended_track.items())},
            "tracks_eligible": self.tracks_eligible,
            "tracks_eligible_searched": self.tracks_eligible_searched,
            "track_coverage": (
                round(self.tracks_eligible_searched / self.tracks_eligible, 4)
                if self.tracks_eligible
                else None
            ),
            "fallback_crops": self.fallback_crops,
            "refresh_crops": self.refresh_crops,
            "scene_cuts": self.scene_cuts,
            "fallback_crops_live": self.fallback_crops_live,
        }


class _Send(NamedTuple):
    track_id: str
    shot: Shot
    reason: str


def _released(track_id: str, r: Release[Shot], current: Shot | None = None) -> _Send:
    """A selector release as a send, with its reason: the face just offered, a held one, or a refresh."""
    if r.refresh:
        return _Send(track_id, r.payload, SendReason.REFRESH)
    return _Send(track_id, r.payload, SendReason.BEST_SHOT if r.payload is current else SendReason.HELD)


# A track counts for coverage when it held a face at least quality.min_face_px wide for this long: a person
# seen that well should be searched at least once.
COVERAGE_MIN_S = 1.0


@dataclass
class _TrackCover:
    """Per live track: when its face was first and last big enough, its best shot that failed the gate, and
    the fallback-worthy shots of the last ``ingest.unpassed_face_window_s`` (for the live send)."""

    first_big: float | None = None
    last_big: float | None = None
    fallback: Shot | None = None
    recent: deque[Shot] = field(default_factory=deque)

    def keep(self, shot: Shot, window_s: float | None) -> None:
        """Note a fallback-worthy shot: the best overall, and the recent ones inside the window."""
        if self.fallback is None or shot.quality.score > self.fallback.quality.score:
            self.fallback = shot
        if window_s is not None:
            self.recent.append(shot)
            while self.recent and shot.stream_s - self.recent[0].stream_s > window_s + 1e-6:
                self.recent.popleft()

    def live_choice(self, t: float, window_s: float | None) -> Shot | None:
        """The face to search now: the best of the window when it holds one, else the best overall."""
        if window_s is not None:
            fresh = [s for s in self.recent if t - s.stream_s <= window_s + 1e-6]
            if fresh:
                return max(fresh, key=lambda s: s.quality.score)
        return self.fallback

    def forget_shots(self) -> None:
        self.fallback = None
        self.recent.clear()

    @property
    def big_for_s(self) -> float:
        """Stream time from the first to the latest frame in which the face was big enough."""
        return 0.0 if self.first_big is None else (self.last_big or 0.0) - self.first_big

    @property
    def eligible(self) -> bool:
        return self.first_big is not None and self.big_for_s >= COVERAGE_MIN_S


class _CameraState:
    def __init__(self, settings: Settings, motion_gating: bool | None = None) -> None:
        ing = settings.ingest
        self.tracker = IouTracker(ing.track_iou, ing.track_max_age_s)
        self.selector: BestShotSelector[Shot] = BestShotSelector(
            ing.best_shot_margin,
            ing.best_shot_max_per_track,
            ing.best_shot_min_interval_s,
            ing.best_shot_refresh_s,
        )
        self.last_t: float | None = None
        self.cuts = SceneCutDetector(ing.scene_cut_distance)
        gating = ing.motion_gating if motion_gating is None else motion_gating
        self.gate = MotionGate(ing.motion_min_changed_fraction, ing.motion_max_skip_s, gating)
        self.cover: dict[str, _TrackCover] = {}


def chip_template_for(settings: Settings, landmark_scheme: str) -> tuple[ChipTemplate, str]:
    """The embedder card's chip template for the detector's landmark scheme, and its recorded name."""
    card = find_card(settings.models_dir, settings.models.embedder)
    return card.template_for(landmark_scheme), f"{card.name}/{landmark_scheme}"


class IngestPipeline:
    def __init__(
        self, settings: Settings, detector: Detector, template: ChipTemplate, template_name: str
    ) -> None:
        self.settings = settings
        self.detector = detector
        self.template = template
        self.template_name = template_name
        self.totals = PipelineTotals()
        self._cameras: dict[str, _CameraState] = {}
        # Detection scores differ between detectors: the gate uses this detector's own confident score.
        self.quality = for_detector(settings.quality, detector)

    @classmethod
    def from_settings(cls, settings: Settings, detector: Detector | None = None) -> IngestPipeline:
        if detector is None:
            from lfr.vision import load_detector

            detector = load_detector(settings)
        template, name = chip_template_for(settings, getattr(detector, "landmark_scheme", "mtcnn5"))
        return cls(settings, detector, template, name)

    def _state(self, camera: Camera) -> _CameraState:
        st = self._cameras.get(camera.camera_id)
        if st is None:
            st = self._cameras[camera.camera_id] = _CameraState(self.settings, camera.motion_gating)
        return st

    def active_tracks(self, camera_id: str) -> int:
        st = self._cameras.get(camera_id)
        return 0 if st is None else len(st.tracker.tracks)

    def process(self, camera: Camera, frame: Frame, key: CropKey) -> FrameResult:
        """Detect, track, assess and select the faces of one frame; seal the crops chosen to be sent."""
        st = self._state(camera)
        t = frame.stream_s
        st.last_t = t
        res = FrameResult(camera.camera_id, frame.seq)
        tot = self.totals
        tot.frames += 1
        if not st.gate.decide(frame.image, t, len(st.tracker.tracks)).detect:
            # No live track and nothing changed: no face can have arrived, and no track needs ageing.
            res.gated = True
            tot.gated += 1
            self._seal(camera, [_released(tid, r) for tid, r in st.selector.due(t)], key, res, t)
            return res
        to_send: list[_Send] = []
        if st.cuts.is_cut(frame.image) and st.tracker.tracks:
            # A new shot: a face where one was is someone else. End every track as if its person had left.
            res.scene_cut = True
            tot.scene_cuts += 1
            for tid in st.tracker.end_all():
                to_send.extend(self._end_track(st, tid, t, res))
        t0 = time.perf_counter()
        detections = self.detector.detect(frame.image)
        res.detect_s = time.perf_counter() - t0
        res.faces = len(detections)
        update = st.tracker.update([d.bbox for d in detections], t)
        res.tracks_started = len(update.started)
        for tid in update.ended:
            to_send.extend(self._end_track(st, tid, t, res))
        q = self.quality
        for det, tid in zip(detections, update.track_ids, strict=True):
            cover = st.cover.setdefault(tid, _TrackCover())
            if det.bbox[2] >= q.min_face_px:
                cover.first_big = t if cover.first_big is None else cover.first_big
                cover.last_big = t
            try:
                chip = align(frame.image, det.landmarks, self.template)
            except AlignmentError:
                res.outcomes["rejected_quality"] += 1
                continue
            report = assess(det, chip, q)
            shot = Shot(frame.seq, frame.captured_ms, frame.mono, t, det, report, chip)
            if not report.passed:
                res.outcomes["rejected_quality"] += 1
                # A track that has sent a crop needs no fallback: it has been searched.
                if st.selector.sent(tid) == 0 and self._fallback_worthy(det):
                    cover.keep(shot, self.settings.ingest.unpassed_face_window_s)
                continue
            outcome, now = st.selector.offer(tid, t, report.score, shot)
            if outcome is not Outcome.SENT:
                res.outcomes[outcome.value] += 1
            else:
                cover.forget_shots()  # searched: the unpassed faces will not be needed
            to_send.extend(_released(tid, r, shot) for r in now)
        to_send.extend(self._send_unpassed_live(st, update.track_ids, t, res))
        to_send.extend(_released(tid, r) for tid, r in st.selector.due(t))
        self._seal(camera, to_send, key, res, t)
        tot.faces += res.faces
        tot.rejected_quality += res.rejected_quality
        tot.tracks += res.tracks_started
        tot.detect_s += res.detect_s
        return res

    def finish(self, camera: Camera, key: CropKey) -> FrameResult:
        """End every track of the camera (its stream ended) as if ``track_max_age_s`` had passed."""
        st = self._cameras.pop(camera.camera_id, None)
        res = FrameResult(camera.camera_id, 0)
        if st is None:
            return res
        t = (st.last_t or 0.0) + self.settings.ingest.track_max_age_s
        to_send: list[_Send] = []
        for tid in st.tracker.end_all():
            to_send.extend(self._end_track(st, tid, t, res))
        self._seal(camera, to_send, key, res, t)
        return res

    def _fallback_worthy(self, det: Detection) -> bool:
        """A face that failed the gate but may still be searched if its track yields nothing better."""
        ing = self.settings.ingest
        return (
            ing.search_unpassed_tracks
            and det.bbox[2] >= self.settings.quality.min_face_px
            and det.score >= ing.fallback_min_detector_score
        )

    def _send_unpassed_live(
        self, st: _CameraState, track_ids: list[str], t: float, res: FrameResult
    ) -> list[_Send]:
        """Live tracks whose face has been big enough for ``ingest.unpassed_send_after_s`` without one
        passing the gate: their best unpassed face of the last ``ingest.unpassed_face_window_s``, now.

        Why not wait for the track's end: a track ends ``track_max_age_s`` after its face was last seen,
        so a person whose face never passed the gate was searched seconds after they were seen, and any
        alert came that late. Why the window: the best face of the whole track is often its first (the
        face was as poor throughout), which by then is ``unpassed_send_after_s`` old; a recent one keeps
        capture to alert short. The crop counts against ``best_shot_max_per_track`` (the selector's cap),
        so no track sends more crops than the cap, whether or not its face passes the gate later; and each
        track sends it at most once (after it, the track has been searched and keeps no fallback).
        """
        ing = self.settings.ingest
        after = ing.unpassed_send_after_s
        if after is None or not ing.search_unpassed_tracks:
            return []
        out: list[_Send] = []
        for tid in dict.fromkeys(track_ids):  # each track once, in detection order
            cover = st.cover.get(tid)
            # The epsilon absorbs float noise in stream times (frames 0.2 s apart).
            if cover is None or st.selector.sent(tid) > 0 or cover.big_for_s + 1e-6 < after:
                continue
            shot = cover.live_choice(t, ing.unpassed_face_window_s)
            if shot is None:
                continue
            out.append(_Send(tid, shot, SendReason.UNPASSED_LIVE))
            cover.forget_shots()
            st.selector.note_sent(tid)
            res.outcomes["fallback"] += 1
            self.totals.fallback_crops += 1
            self.totals.fallback_crops_live += 1
        return out

    def _end_track(self, st: _CameraState, track_id: str, t: float, res: FrameResult) -> list[_Send]:
        """The shots to send as a track ends: its held best shot, or, for a track that sent nothing although
        its face was big enough for COVERAGE_MIN_S, its best shot that failed the quality gate (when
        search_unpassed_tracks is on)."""
        shots, sent = st.selector.end(track_id, t)
        out = [_released(track_id, r) for r in shots]
        cover = st.cover.pop(track_id, _TrackCover())
        # Only a person seen well enough for COVERAGE_MIN_S gets the fallback search: a blip of a track (a
        # passing shoulder, a detection for a frame or two) would add searches of poor faces for nobody.
        if sent == 0 and not shots and cover.fallback is not None and cover.eligible:
            out = [_Send(track_id, cover.fallback, SendReason.UNPASSED_END)]
            res.outcomes["fallback"] += 1
            self.totals.fallback_crops += 1
        # ``sent`` already counts the shots the selector released at the end; the fallback comes on top.
        total = sent + (len(out) - len(shots))
        searched = total > 0
        self.totals.crops_per_ended_track[total] += 1
        if cover.eligible:
            self.totals.tracks_eligible += 1
            self.totals.tracks_eligible_searched += int(searched)
        res.ended_tracks.append((track_id, cover.eligible, searched))
        return out

    def _seal(self, camera: Camera, sends: list[_Send], key: CropKey, res: FrameResult, t: float) -> None:
        for tid, shot, reason in sends:
            crop = build_crop(
                deployment_id=camera.deployment_id,
                camera_id=camera.camera_id,
                track_id=tid,
                captured_ms=shot.captured_ms,
                frame_seq=shot.frame_seq,
                detection=shot.detection,
                quality=shot.quality,
                detector_model_id=self.detector.model_id,
                chip=shot.chip,
                chip_template=self.template_name,
                jpeg_quality=self.settings.ingest.jpeg_quality,
                key=key,
                send_reason=WIRE_SEND_REASON[reason],
            )
            res.crops.append(OutgoingCrop(crop, shot.mono, reason, max(t - shot.stream_s, 0.0)))
            res.outcomes["sent"] += 1
            if reason == SendReason.REFRESH:
                res.outcomes["refresh"] += 1
                self.totals.refresh_crops += 1
        self.totals.crops += len(sends)
