"""Retrospective-search videos: frames larger than the pixel limit are refused from the container's
header before any frame is decoded; a video within the limit is read as before."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from lfr.retro.video import VideoError, sample_frames


def _video(path: Path, w: int, h: int, frames: int = 6) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (w, h))
    assert writer.isOpened(), "OpenCV cannot write MJPG here"
    for i in range(frames):
        writer.write(np.full((h, w, 3), i * 20, np.uint8))
    writer.release()
    return path


def test_oversized_frames_are_refused_before_decoding(tmp_path: Path) -> None:
    clip = _video(tmp_path / "clip.avi", 64, 48)
    with pytest.raises(VideoError, match="64x48 frames; the limit is 3,000 pixels"):
        next(sample_frames(clip, 10.0, max_pixels=3_000))
    frames = list(sample_frames(clip, 10.0, max_pixels=64 * 48))
    assert len(frames) == 6 and frames[0][2].shape == (48, 64, 3)


def test_non_video_bytes_are_a_clear_error(tmp_path: Path) -> None:
    fake = tmp_path / "fake.mp4"
    fake.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\xff" * 4096)
    with pytest.raises(VideoError):
        list(sample_frames(fake, 5.0, max_pixels=1_000_000))
