"""Fixtures for ingest integration tests: the street video (deployments, crop reading: tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def street_video(shared_faces: Path) -> Path:
    video = shared_faces / "facenet_pytorch_samples" / "video" / "video.mp4"
    if not video.is_file():
        pytest.skip(f"{video} not found (shared face data incomplete)")
    return video
