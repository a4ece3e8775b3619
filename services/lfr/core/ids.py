"""Deterministic identifiers: redelivery and replay must reproduce the same ids, so ids are derived."""

from __future__ import annotations

import hashlib
import uuid


def derive_id(*parts: str | int) -> str:
    h = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()
    return h[:32]


def hit_id(crop_id: str, subject_id: str) -> str:
    return derive_id("hit", crop_id, subject_id)


def alert_id(deployment_id: str, subject_id: str, window_start_ms: int) -> str:
    return derive_id("alert", deployment_id, subject_id, window_start_ms)


def new_id() -> str:
    return uuid.uuid4().hex
