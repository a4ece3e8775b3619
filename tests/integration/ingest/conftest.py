"""Fixtures for ingest integration tests: the street video (deployments, crop reading: tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def street_video(face_data: Path) -> Path:
    return face_data / "facenet_pytorch_samples" / "video" / "video.mp4"
