"""The preview an officer chooses from: a contact sheet of every track and the same list as JSON.

Each tile shows the track's best view with its number and its first and last frame, so ``--keep-track N``
can be chosen by looking. The preview holds faces: it is case material, written only where the officer asks
(``--preview DIR``), never logged or kept by the service.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from lfr.redact.engine import THUMB_PX, Analysis

COLUMNS = 8
LABEL_PX = 30
SHEET_NAME = "tracks.png"
LIST_NAME = "tracks.json"


def track_rows(analysis: Analysis) -> list[dict[str, Any]]:
    fps = analysis.fps
    rows = []
    for t in analysis.tracks:
        first, last = t.first_frame, t.last_frame
        rows.append(
            {
                "track": t.track_id,
                "first_frame": first,
                "last_frame": last,
                "first_s": round(first / fps, 3) if fps else None,
                "last_s": round(last / fps, 3) if fps else None,
                "detections": len(t.observations),
                "max_width_px": round(max(o.box[2] for o in t.observations)),
                "best_score": round(max(o.score for o in t.observations), 3),
                "first_box": [round(v, 1) for v in t.observations[0].box],
            }
        )
    return rows


def contact_sheet(analysis: Analysis) -> np.ndarray:
    n = max(len(analysis.tracks), 1)
    cols = min(COLUMNS, n)
    rows = -(-n // cols)
    tile_h = THUMB_PX + LABEL_PX
    sheet = np.full((rows * tile_h, cols * THUMB_PX, 3), 255, np.uint8)
    for k, t in enumerate(analysis.tracks):
        r, c = divmod(k, cols)
        y, x = r * tile_h, c * THUMB_PX
        if t.thumbnail is not None:
            sheet[y : y + THUMB_PX, x : x + THUMB_PX] = t.thumbnail
        font = cv2.FONT_HERSHEY_SIMPLEX
        cv2.putText(
            sheet, f"#{t.track_id}", (x + 3, y + THUMB_PX + 12), font, 0.4, (0, 0, 160), 1, cv2.LINE_AA
        )
        span = f"f{t.first_frame}-{t.last_frame}"
        cv2.putText(sheet, span, (x + 3, y + THUMB_PX + 25), font, 0.35, (0, 0, 0), 1, cv2.LINE_AA)
        cv2.rectangle(sheet, (x, y), (x + THUMB_PX - 1, y + tile_h - 1), (200, 200, 200), 1)
    return sheet


def write_preview(directory: Path, analysis: Analysis, source_name: str) -> dict[str, str]:
    """Write the sheet and the list into ``directory`` (created); returns their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    sheet_path, list_path = directory / SHEET_NAME, directory / LIST_NAME
    if not cv2.imwrite(str(sheet_path), contact_sheet(analysis)):
        raise OSError(f"cannot write {sheet_path}")
    doc = {
        "source": source_name,
        "kind": analysis.kind,
        "frames": analysis.frames,
        "fps": analysis.fps,
        "tracks": track_rows(analysis),
    }
    list_path.write_text(json.dumps(doc, indent=2))
    return {"sheet": str(sheet_path), "list": str(list_path)}
