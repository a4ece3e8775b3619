"""Write a fixed-camera test clip for ``lfr bench ingest --video``: a still 1080p scene, sensor noise, and
one person (a real face photo) crossing it for 2 s of every 20 s.

Why: the street benchmark video comes from a moving camera, where motion gating saves nothing; a fixed
camera over a mostly empty scene is where it pays, and this clip lets the benchmark show how much.

    .venv/bin/python load-tests/make_fixed_scene.py /tmp/fixed.mp4
    .venv/bin/lfr bench ingest --json --video /tmp/fixed.mp4 --motion-gating
    .venv/bin/lfr bench ingest --json --video /tmp/fixed.mp4 --no-motion-gating
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from lfr.core.shared_data import shared_faces_dir

FPS = 25
SECONDS = 20
PERSON = Path("face_recognition_demo") / "known_people" / "biden" / "biden.jpg"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--faces-dir", type=Path, default=None)
    args = ap.parse_args()
    photo = cv2.imread(str((args.faces_dir or shared_faces_dir()) / PERSON))
    if photo is None:
        raise SystemExit(f"cannot read {PERSON} under the shared faces folder")
    person = cv2.resize(photo, (300, round(photo.shape[0] * 300 / photo.shape[1])))[:460]
    rng = np.random.default_rng(5)
    texture = cv2.GaussianBlur(rng.integers(0, 256, (1080, 1920, 3), dtype=np.uint8), (0, 0), 8)
    gradient = np.linspace(40, 160, 1920, dtype=np.float32)[None, :, None]
    background = np.clip(texture.astype(np.float32) * 0.5 + gradient, 0, 255).astype(np.uint8)
    out = cv2.VideoWriter(str(args.out), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (1920, 1080))
    if not out.isOpened():
        raise SystemExit(f"cannot write {args.out}")
    crossing = range(8 * FPS, 10 * FPS)  # seconds 8-10
    for i in range(SECONDS * FPS):
        noise = rng.integers(-3, 4, background.shape)
        img = np.clip(background.astype(np.int16) + noise, 0, 255).astype(np.uint8)
        if i in crossing:
            x = 100 + (i - crossing.start) * 12  # 300 px/s: a walk across a 1080p view
            h, w = person.shape[:2]
            img[300 : 300 + h, x : x + w] = person
        out.write(img)
    out.release()
    print(f"wrote {args.out}: {SECONDS} s at {FPS} fps, one person crossing at 8-10 s")


if __name__ == "__main__":
    main()
