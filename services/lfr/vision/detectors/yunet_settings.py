"""Settings of the YuNet detector plug-in (:mod:`lfr.vision.detectors.yunet`): the ``detector.yunet`` section.

Why a module of its own beside the plug-in: :mod:`lfr.core.config` composes every detector's settings into
the one settings tree and must import them without loading the detector (ONNX Runtime, OpenCV), so this
module needs nothing but pydantic.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class YunetSettings(BaseModel):
    """Settings of the YuNet detector plug-in (lfr.vision.detectors.yunet)."""

    score_threshold: float = Field(
        0.6, ge=0, le=1, description="faces scoring below this (sqrt of class x objectness) are dropped"
    )
    nms_threshold: float = Field(0.3, gt=0, le=1, description="IoU above which the lower-scored box goes")
    landmarks: Literal["onet", "yunet"] = Field(
        "onet",
        description="onet: MTCNN's O-Net places the five points in each YuNet box (scheme mtcnn5; the "
        "chips recognise better, docs/models.md); yunet: YuNet's own points (scheme yunet5)",
    )
    onet_card: str = Field("mtcnn", description="the MTCNN card whose O-Net refines the landmarks")
    reliable_face_px: int = Field(
        20,
        ge=8,
        description="smallest face width YuNet finds reliably; frames are shrunk so that "
        "detector.min_face_px maps to this (never enlarged): most of YuNet's speed on large frames",
    )
