"""Settings of the MTCNN detector plug-in (:mod:`lfr.vision.detectors.mtcnn`): the cascade's thresholds and
image pyramid.

Why a module of its own beside the plug-in: :mod:`lfr.core.config` composes every detector's settings into
the one settings tree and must import them without loading the detector (ONNX Runtime, OpenCV), so this
module needs nothing but pydantic. The keys sit directly under ``detector`` (``detector.thresholds``,
``LFR_DETECTOR__SCALE_FACTOR``), where they were before a second detector existed.
"""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator


class MtcnnSettings(BaseModel):
    """The MTCNN cascade's settings (P-Net, R-Net and O-Net thresholds; pyramid factor)."""

    thresholds: tuple[float, float, float] = Field(
        (0.6, 0.7, 0.7), description="P-Net, R-Net and O-Net probability thresholds of the MTCNN cascade"
    )
    first_level_thresholds: tuple[float, ...] = Field(
        (0.8, 0.7),
        description="P-Net thresholds for the finest pyramid levels (smallest faces), finest first; later "
        "levels use thresholds[0]. The finest levels hold most of a frame's pixels and so most of P-Net's "
        "false candidates; () restores the reference cascade",
    )
    scale_factor: float = Field(
        0.709, gt=0.1, lt=1.0, description="MTCNN image pyramid factor between levels"
    )

    @field_validator("thresholds", "first_level_thresholds")
    @classmethod
    def _probabilities(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        """The nets output probabilities: a threshold outside [0, 1] admits everything or nothing."""
        for t in v:
            if not 0.0 <= t <= 1.0:
                raise ValueError(f"detector threshold {t} is outside [0, 1]")
        return v

    def pnet_threshold(self, level: int) -> float:
        """P-Net's threshold on pyramid level ``level`` (0 = the finest level, the smallest faces)."""
        if level < len(self.first_level_thresholds):
            return self.first_level_thresholds[level]
        return self.thresholds[0]
