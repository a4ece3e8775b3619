"""What each input record adds to a window, and the verdicts drawn from windows: no faust in here.

A window's value carries the offset of the last record applied to it (``o``). A record whose offset is not
above it was applied before (a redelivery after a restart, or a record the offset guard re-read): it is
skipped, so a window counts each record once however often it arrives. Records of one key come from one
partition in offset order, which is what makes "not above the last applied offset" mean "applied".
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from lfr.core.serde import SerdeError, decode
from lfr.v1.adjudication_pb2 import Adjudication, Outcome
from lfr.v1.alert_pb2 import Alert

MINUTE_MS = 60_000
CAMERA_FIGURES = ("frames", "analysed", "faces", "crops")
OUTCOME_NAMES = {
    Outcome.OUTCOME_MATCH: "match",
    Outcome.OUTCOME_NO_MATCH: "no_match",
    Outcome.OUTCOME_UNABLE_TO_DECIDE: "unable",
}


@dataclass(frozen=True)
class Observation:
    """One input record's contribution to its key's window."""

    key: str
    at_ms: int
    figures: dict[str, int]
    labels: dict[str, str] = field(default_factory=dict)


def camera_observation(value: bytes | None, at_ms: int) -> Observation | None:
    """A camera report from ingest (JSON); None for anything malformed (it counts nothing)."""
    try:
        doc = json.loads(value or b"")
        camera_id = str(doc["camera_id"])
        figures = {name: max(0, int(doc.get(name, 0))) for name in CAMERA_FIGURES}
    except (ValueError, KeyError, TypeError):
        return None
    if not camera_id:
        return None
    figures["reports"] = 1
    return Observation(camera_id, at_ms, figures, {"deployment_id": str(doc.get("deployment_id", ""))})


def alert_observation(value: bytes | None, at_ms: int) -> Observation | None:
    try:
        alert = decode(Alert, value)
    except SerdeError:
        return None
    if not alert.deployment_id:
        return None
    return Observation(alert.deployment_id, at_ms, {"alerts": 1})


def adjudication_observation(value: bytes | None, at_ms: int) -> Observation | None:
    try:
        adj = decode(Adjudication, value)
    except SerdeError:
        return None
    name = OUTCOME_NAMES.get(adj.outcome)
    if not adj.deployment_id or name is None:
        return None
    return Observation(adj.deployment_id, at_ms, {name: 1})


def merge(current: dict[str, object] | None, obs: Observation, offset: int) -> dict[str, object] | None:
    """The window's new value with ``obs`` added, or None when the record at ``offset`` was applied."""
    cur = dict(current or {})
    last = cur.get("o")
    if isinstance(last, int) and last >= offset:
        return None
    for name, n in obs.figures.items():
        cur[name] = int(cur.get(name, 0)) + n  # type: ignore[call-overload]
    cur["o"] = offset
    cur["last_ms"] = max(int(cur.get("last_ms", 0)), obs.at_ms)  # type: ignore[call-overload]
    if obs.figures.get("frames", 0) > 0:
        cur["frames_ms"] = max(int(cur.get("frames_ms", 0)), obs.at_ms)  # type: ignore[call-overload]
    cur.update(obs.labels)
    return cur


def minute_of(at_ms: int) -> int:
    return at_ms // MINUTE_MS * MINUTE_MS


def camera_silent(minutes: dict[int, dict[str, object]], now_ms: int, silent_after_s: float) -> int | None:
    """When the camera went silent (ms), or None while frames keep coming.

    Silent means no frames for ``silent_after_s``: either ingest reports zero frames (a frozen or dark
    stream) or its reports stopped (the replica or its network is gone). A camera never seen is not judged.
    """
    if not minutes:
        return None
    last_frames = max((int(v.get("frames_ms", 0)) for v in minutes.values()), default=0)  # type: ignore[call-overload]
    first_report = min(minutes)
    reference = last_frames or first_report
    if now_ms - reference > silent_after_s * 1000:
        return reference
    return None


@dataclass(frozen=True)
class AlertRate:
    current: int
    last_minute: int
    baseline: float
    jump: bool


def alert_rate(
    minutes: dict[int, int], now_ms: int, baseline_minutes: int, factor: float, minimum: int
) -> AlertRate:
    """This minute's and the last minute's alerts against the mean of the minutes before.

    A jump is the current or last minute reaching ``minimum`` and exceeding ``factor`` times the baseline:
    the minimum keeps one or two alerts on a quiet deployment from raising an event.
    """
    now_minute = minute_of(now_ms)
    current = minutes.get(now_minute, 0)
    last = minutes.get(now_minute - MINUTE_MS, 0)
    before = [minutes.get(now_minute - MINUTE_MS * (i + 2), 0) for i in range(baseline_minutes)]
    baseline = sum(before) / baseline_minutes
    peak = max(current, last)
    return AlertRate(current, last, round(baseline, 2), peak >= minimum and peak > factor * baseline)
