"""FaceCrop records: the aligned chip as JPEG, sealed under the current short-lived crop key.

Why the chip and not the frame: the embedder needs only the aligned face, and the less of a scene that
travels, the less there is to protect. Why seal here: the JPEG bytes never leave this module in clear;
the associated data (crop id, camera, deployment) binds the ciphertext to its record so it cannot be
replayed under another camera or deployment (lfr.core.crypto).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from lfr.core.config import QualitySettings
from lfr.core.crypto import crop_aad, seal
from lfr.core.ids import new_id
from lfr.core.send_reasons import passed_by_reason
from lfr.core.timeutil import ts_from_ms
from lfr.v1.common_pb2 import BoundingBox, Point, Quality
from lfr.v1.crop_pb2 import SEND_REASON_UNSPECIFIED, FaceCrop, SendReason
from lfr.vision.detectors.base import Detection
from lfr.vision.quality import QualityReport, gate_reasons


class ChipEncodeError(RuntimeError):
    """OpenCV could not encode the chip (never expected for a uint8 BGR chip)."""


@dataclass(frozen=True)
class CropKey:
    """The crop data key to seal with (from ``CropKeyring.current()``)."""

    key_id: str
    key: bytes


def encode_chip(chip: np.ndarray, jpeg_quality: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", chip, [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
    if not ok:
        raise ChipEncodeError("JPEG encoding of the chip failed")
    return buf.tobytes()


def build_crop(
    *,
    deployment_id: str,
    camera_id: str,
    track_id: str,
    captured_ms: int,
    frame_seq: int,
    detection: Detection,
    quality: QualityReport,
    detector_model_id: str,
    chip: np.ndarray,
    chip_template: str,
    jpeg_quality: int,
    key: CropKey,
    crop_id: str | None = None,
    send_reason: SendReason = SEND_REASON_UNSPECIFIED,
) -> FaceCrop:
    """A complete FaceCrop with the chip JPEG-encoded and sealed; the clear JPEG is not kept."""
    cid = crop_id or new_id()
    x, y, w, h = detection.bbox
    jpeg = encode_chip(chip, jpeg_quality)
    blob = seal(key.key_id, key.key, jpeg, crop_aad(cid, camera_id, deployment_id))
    del jpeg
    return FaceCrop(
        crop_id=cid,
        deployment_id=deployment_id,
        camera_id=camera_id,
        track_id=track_id,
        captured_at=ts_from_ms(captured_ms),
        frame_seq=frame_seq,
        bbox=BoundingBox(x=float(x), y=float(y), width=float(w), height=float(h)),
        landmarks=[
            Point(x=float(px), y=float(py)) for px, py in np.asarray(detection.landmarks).reshape(-1, 2)
        ],
        detector_score=float(detection.score),
        quality=Quality(
            face_px=float(quality.face_px),
            sharpness=float(quality.sharpness),
            yaw=float(quality.yaw_ratio),
            score=float(quality.score),
        ),
        detector_model_id=detector_model_id,
        chip=blob,
        chip_template=chip_template,
        chip_size=int(chip.shape[0]),
        send_reason=send_reason,
    )


def passed_gate(crop: FaceCrop, cfg: QualitySettings) -> bool:
    """Whether the crop's face passed the quality gate ``cfg`` (resolved for the detector).

    Why: every crop either passed the gate (best-shot selection) or is a track's unpassed fallback face.
    A crop's ``send_reason`` says which (lfr.core.send_reasons); an older producer's crop leaves it unset,
    and the verdict is then recomputed from the measures the record carries: the gate's own checks
    (``lfr.vision.quality.gate_reasons``) on the recorded values, compared in float32 as they travel (a unit
    test holds the verdict to ``assess``'s). The load generator uses it to split latency by kind of crop.
    """
    said = passed_by_reason(crop.send_reason)
    if said is not None:
        return said
    q = crop.quality
    return not gate_reasons(crop.bbox.width, q.sharpness, q.yaw, crop.detector_score, cfg, number=np.float32)
