"""passed_gate: the quality gate's verdict recomputed from a crop record equals the gate's own."""

from __future__ import annotations

import os

import numpy as np

from lfr.core.config import QualitySettings
from lfr.ingest.crops import CropKey, build_crop, passed_gate
from lfr.v1 import crop_pb2
from lfr.vision import templates
from lfr.vision.align import align
from lfr.vision.cards import ChipTemplate
from lfr.vision.detectors.base import Detection
from lfr.vision.quality import QualityReport, assess

TEMPLATE = ChipTemplate(size=112, padding=0.25, points=templates.MTCNN5_DLIB_CHIP)
KEY = CropKey("key-1", os.urandom(32))


def _face(rng: np.random.Generator, frame: np.ndarray) -> Detection:
    w = float(rng.uniform(25, 120))
    x, y = float(rng.uniform(0, 500)), float(rng.uniform(0, 340))
    rel = np.asarray(templates.MTCNN5_IN_BOX, np.float64)
    lm = np.stack([x + rel[:, 0] * w, y + rel[:, 1] * w], axis=1)
    lm[2, 0] += float(rng.uniform(-0.4, 0.4)) * w  # turn the head: yaw on both sides of the limit
    return Detection(bbox=(x, y, w, w), landmarks=lm.astype(np.float32), score=float(rng.uniform(0.5, 1.0)))


def _crop(
    det: Detection,
    report: QualityReport,
    chip: np.ndarray,
    frame_seq: int = 0,
    send_reason: int = crop_pb2.SEND_REASON_UNSPECIFIED,
) -> crop_pb2.FaceCrop:
    return build_crop(
        deployment_id="dep-1",
        camera_id="cam-1",
        track_id="t",
        captured_ms=0,
        frame_seq=frame_seq,
        detection=det,
        quality=report,
        detector_model_id="fake:1",
        chip=chip,
        chip_template="emb/mtcnn5",
        jpeg_quality=90,
        key=KEY,
        send_reason=send_reason,
    )


def test_the_recorded_measures_give_the_gate_s_verdict() -> None:
    cfg = QualitySettings(min_face_px=40, min_sharpness=30.0, max_yaw_ratio=0.3).for_detector(0.8)
    rng = np.random.default_rng(7)
    passed = 0
    failed_checks: set[str] = set()
    for i in range(200):
        # Smooth frames (blur fails the gate) and noisy ones (sharp), so every check decides some cases.
        frame = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
        if i % 3 == 0:
            frame = np.full_like(frame, 120)
        det = _face(rng, frame)
        chip = align(frame, det.landmarks, TEMPLATE)
        report = assess(det, chip, cfg)
        crop = _crop(det, report, chip, frame_seq=i)
        assert passed_gate(crop, cfg) is report.passed, report.reasons
        passed += report.passed
        failed_checks |= {r.split(":")[0] for r in report.reasons}
    # Both verdicts, and a failure of every check, were among the cases.
    assert passed >= 10
    assert failed_checks == {"face too small", "face too blurred", "face turned too far", "detector unsure"}


def test_the_send_reason_decides_where_the_producer_set_it() -> None:
    """A crop says why it was sent; an older producer's crop (UNSPECIFIED) is judged from its measures."""
    cfg = QualitySettings(min_face_px=40, min_sharpness=30.0, max_yaw_ratio=0.3).for_detector(0.8)
    rng = np.random.default_rng(3)
    frame = np.full((480, 640, 3), 120, np.uint8)  # smooth: the face fails the gate on sharpness
    det = _face(rng, frame)
    chip = align(frame, det.landmarks, TEMPLATE)
    report = assess(det, chip, cfg)
    assert not report.passed

    def crop(reason: int) -> crop_pb2.FaceCrop:
        return _crop(det, report, chip, send_reason=reason)

    assert passed_gate(crop(crop_pb2.SEND_REASON_UNSPECIFIED), cfg) is False  # recomputed: fails
    assert passed_gate(crop(crop_pb2.SEND_REASON_UNPASSED_END), cfg) is False
    assert passed_gate(crop(crop_pb2.SEND_REASON_UNPASSED_LIVE), cfg) is False
    # The producer's word wins over measures recomputed under another configuration.
    assert passed_gate(crop(crop_pb2.SEND_REASON_BEST_SHOT), cfg) is True
    assert passed_gate(crop(crop_pb2.SEND_REASON_REFRESH), cfg) is True
