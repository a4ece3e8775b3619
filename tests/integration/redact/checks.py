"""What the redaction tests measure on output footage: faces the strongest detector still finds.

A redacted face leaks on a frame when the detector, run at lowered thresholds on the OUTPUT frame, finds a
face where the input frame had a real face (a confident detection at the same lowered thresholds) that
belongs to no kept track, or finds any face inside a covered box. Kept faces must still be found and
recognised. Input and output are decoded in lockstep, so frame counts and timestamps are compared too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np

from lfr.core.config import Settings
from lfr.redact.plan import Box
from lfr.vision import Detection, Detector, load_detector
from lfr.vision.boxes import iou_matrix

# The checker always uses MTCNN, whichever detector card redaction is configured with: its thresholds
# can be lowered stage by stage, and it finds small faces down to its 12 px window. Real faces on an input
# frame: MTCNN at REFERENCE_THRESHOLDS (below the live path's 0.6/0.7/0.7) with the reference cascade,
# faces down to 20 px (redaction's minimum), scoring at least REAL_FACE_SCORE. Every input frame is looked
# at, not only the frames redaction detected on, so what is tested is the detection schedule, the following
# between detections (tracking, interpolation, margin, hold) and the masks; faces MTCNN cannot find on any
# frame are the documented limit (docs/redaction.md).
CHECK_DETECTOR = "mtcnn"
CHECK_MIN_FACE = 20
REFERENCE_THRESHOLDS = (0.4, 0.5, 0.5)
REAL_FACE_SCORE = 0.9
# On the output frame the detector runs lower still: any face it finds where a real face was is a leak.
OUTPUT_THRESHOLDS = (0.3, 0.4, 0.4)
OVERLAP = 0.3


def _detector(settings: Settings, thresholds: tuple[float, float, float]) -> Detector:
    det = settings.detector.model_copy(
        update={"thresholds": thresholds, "first_level_thresholds": (), "min_face_px": CHECK_MIN_FACE}
    )
    models = settings.models.model_copy(update={"detector": CHECK_DETECTOR})
    return load_detector(settings.model_copy(update={"detector": det, "models": models}))


@dataclass
class Checker:
    reference: Detector  # finds the real faces of input frames
    strong: Detector  # looks for them again on output frames

    @classmethod
    def for_settings(cls, settings: Settings) -> Checker:
        return cls(_detector(settings, REFERENCE_THRESHOLDS), _detector(settings, OUTPUT_THRESHOLDS))


def frames_with_times(path: Path) -> Iterator[tuple[float, np.ndarray]]:
    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        for f in c.decode(vs):
            assert f.pts is not None and f.time_base is not None
            yield float(f.pts * f.time_base), f.to_ndarray(format="bgr24")


def xyxy(boxes: Sequence[Box]) -> np.ndarray:
    a = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.column_stack([a[:, 0], a[:, 1], a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]])


def centre_in(box: Box, regions: Sequence[Box]) -> bool:
    """The centre of ``box`` lies in one of ``regions``."""
    cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
    return any(r[0] <= cx <= r[0] + r[2] and r[1] <= cy <= r[1] + r[3] for r in regions)


@dataclass
class LeakReport:
    frames_in: int = 0
    frames_out: int = 0
    frames_checked: int = 0
    times_equal: bool = True
    real_faces: int = 0  # real faces on the checked input frames
    real_found_in_input: int = 0  # of which the reference detector finds on the input (synthetic truth)
    kept_faces: int = 0  # real faces meant to stay visible
    kept_found: int = 0  # of which the strong detector still finds on the output
    leaks: list[tuple[int, Box, float]] = field(default_factory=list)  # (frame, box, score) found again
    kept_seen: list[tuple[int, Box]] = field(default_factory=list)  # (frame, output box) of kept faces

    def as_dict(self) -> dict[str, object]:
        return {
            "frames_in": self.frames_in,
            "frames_out": self.frames_out,
            "frames_checked": self.frames_checked,
            "times_equal": self.times_equal,
            "real_faces": self.real_faces,
            "real_found_in_input": self.real_found_in_input,
            "kept_faces": self.kept_faces,
            "kept_found": self.kept_found,
            "leaks": len(self.leaks),
            "leak_frames": sorted({f for f, _, _ in self.leaks})[:20],
        }


KeptRule = Callable[[int, Box, str], bool]  # (frame, real face box, name) -> meant to stay visible


def _best(real: Sequence[Box], found: Sequence[Box]) -> list[tuple[int, float]]:
    """For each real face, the index of the found box overlapping it most and that IoU (-1, 0 if none)."""
    if not found:
        return [(-1, 0.0)] * len(real)
    ious = iou_matrix(xyxy(real), xyxy(found))
    return [(int(np.argmax(row)), float(row.max())) for row in ious]


def check_output(
    checker: Checker,
    src: Path,
    dst: Path,
    max_frames: int | None = None,
    truth: dict[int, dict[str, Box]] | None = None,
    kept: KeptRule | None = None,
) -> LeakReport:
    """Run the checker's detectors on every input and output frame (the first ``max_frames`` when given;
    the rest are still decoded, counted and their timestamps compared); see the module docstring.

    ``truth`` (synthetic clips: frame -> actor -> face box) replaces the input detections as the real faces,
    and ``kept`` says which real faces are meant to stay visible.
    """
    rep = LeakReport()
    outs = frames_with_times(dst)
    for i, (t_in, img_in) in enumerate(frames_with_times(src)):
        rep.frames_in += 1
        nxt = next(outs, None)
        if nxt is None:
            continue
        rep.frames_out += 1
        t_out, img_out = nxt
        rep.times_equal &= abs(t_in - t_out) < 1e-3
        if max_frames is not None and i >= max_frames:
            continue
        rep.frames_checked += 1
        if truth is not None:
            named = list(truth.get(i, {}).items())
            if named:
                ref = [d.bbox for d in checker.reference.detect(img_in)]
                rep.real_found_in_input += sum(iou >= OVERLAP for _, iou in _best([b for _, b in named], ref))
        else:
            named = [("", d.bbox) for d in checker.reference.detect(img_in) if d.score >= REAL_FACE_SCORE]
        rep.real_faces += len(named)
        if not named:
            continue
        found: list[Detection] = checker.strong.detect(img_out)
        for (name, box), (hit, iou) in zip(
            named, _best([b for _, b in named], [d.bbox for d in found]), strict=True
        ):
            if kept is not None and kept(i, box, name):
                rep.kept_faces += 1
                if iou >= OVERLAP:
                    rep.kept_found += 1
                    rep.kept_seen.append((i, found[hit].bbox))
            elif iou >= OVERLAP:
                rep.leaks.append((i, box, found[hit].score))
    rep.frames_out += sum(1 for _ in outs)
    return rep
