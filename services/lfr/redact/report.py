"""The redaction report: what was found, kept and covered, with the settings and both files' SHA-256.

The hashes tie the output to its source: a disclosure officer (or the defence) can check that a redacted
file is the one this report and its audit record describe, made from the exhibit with that hash. The
report holds ids, counts and settings, never images or embeddings.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict
from pathlib import Path
from typing import Any

from lfr.core.config import Settings
from lfr.redact.engine import Analysis, RenderStats
from lfr.redact.keep import KeepDecision

CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
    return h.hexdigest()


def build_report(
    *,
    redaction_id: str,
    case_ref: str,
    actor: str,
    created_at: str,
    settings: Settings,
    style: str,
    source: Path,
    source_sha256: str,
    output: Path,
    output_sha256: str,
    analysis: Analysis,
    render: RenderStats,
    kept: list[KeepDecision],
    elapsed_s: float,
    output_info: dict[str, Any] | None = None,
) -> dict[str, Any]:
    r = settings.redact
    kept_ids = {k.track_id for k in kept}
    return {
        "redaction_id": redaction_id,
        "case_ref": case_ref,
        "actor": actor,
        "created_at": created_at,
        "input": {
            "name": source.name,
            "sha256": source_sha256,
            "kind": analysis.kind,
            "width": analysis.width,
            "height": analysis.height,
            "frames": analysis.frames,
            "fps": analysis.fps,
            "duration_s": analysis.duration_s,
            "audio": analysis.audio,
        },
        "output": {"name": output.name, "sha256": output_sha256, **(output_info or {})},
        "tracks": {
            "found": len(analysis.tracks),
            "kept": [asdict(k) for k in kept],
            "redacted": [t.track_id for t in analysis.tracks if t.track_id not in kept_ids],
        },
        "frames_touched": render.frames_touched,
        "boxes_drawn": render.boxes_drawn,
        "frames_detected": analysis.detected_frames,
        "frames_seeded": analysis.seed_frames,
        "shot_cuts": analysis.cuts,
        "audio": render.audio,
        "settings": {
            "style": style,
            "detector": analysis.detector_model,
            "min_face_px": r.min_face_px,
            "thresholds": list(r.thresholds),
            "detection_stride": analysis.stride,
            "seed_stride": analysis.seed_every or None,
            "seed_thresholds": list(r.seed_thresholds) if analysis.seed_every and r.seed_thresholds else None,
            "refine_score": analysis.refine_score,
            "margin": r.margin,
            "motion_margin": r.motion_margin,
            "hold_frames": r.hold_frames,
            "x264_preset": r.x264_preset,
            "crf": r.crf,
        },
        "elapsed_s": round(elapsed_s, 3),
    }
