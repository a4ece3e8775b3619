"""Window arithmetic of the monitor: each record counted once, silence and alert-rate verdicts."""

from __future__ import annotations

import json

from lfr.core.config import Settings
from lfr.core.serde import encode
from lfr.ingest.reports import CameraReporter
from lfr.monitor.windows import (
    MINUTE_MS,
    adjudication_observation,
    alert_observation,
    alert_rate,
    camera_observation,
    camera_silent,
    merge,
)
from lfr.v1.adjudication_pb2 import Adjudication, Outcome
from lfr.v1.alert_pb2 import Alert

T0 = 1_800_000_000_000 // MINUTE_MS * MINUTE_MS


def _report(camera: str, frames: int = 10, faces: int = 1) -> bytes:
    doc = {
        "camera_id": camera,
        "deployment_id": "d1",
        "frames": frames,
        "analysed": 2,
        "faces": faces,
        "crops": 1,
    }
    return json.dumps(doc).encode()


def test_a_record_is_applied_once_however_often_it_arrives() -> None:
    obs = camera_observation(_report("cam"), T0)
    assert obs is not None
    w = merge(None, obs, offset=5)
    assert w is not None and w["frames"] == 10 and w["o"] == 5
    assert merge(w, obs, offset=5) is None  # redelivered
    assert merge(w, obs, offset=3) is None  # an older record of the same key
    w2 = merge(w, obs, offset=6)
    assert w2 is not None and w2["frames"] == 20 and w2["reports"] == 2 and w2["deployment_id"] == "d1"


def test_malformed_records_count_nothing() -> None:
    assert camera_observation(b"not json", T0) is None
    assert camera_observation(b'{"frames": 3}', T0) is None
    assert alert_observation(b"\xff\xff", T0) is None
    assert adjudication_observation(encode(Adjudication(deployment_id="d")), T0) is None  # no outcome


def test_alerts_and_outcomes_are_keyed_by_deployment() -> None:
    a = alert_observation(encode(Alert(alert_id="a", deployment_id="d7")), T0)
    assert a is not None and (a.key, a.figures) == ("d7", {"alerts": 1})
    o = adjudication_observation(
        encode(Adjudication(deployment_id="d7", outcome=Outcome.OUTCOME_NO_MATCH)), T0
    )
    assert o is not None and o.figures == {"no_match": 1}


def test_a_camera_is_silent_when_no_frames_came_for_the_threshold() -> None:
    frames = merge(None, camera_observation(_report("c"), T0 + 1000), 1)  # type: ignore[arg-type]
    zero = merge(frames, camera_observation(_report("c", frames=0), T0 + 20_000), 2)  # type: ignore[arg-type]
    assert zero is not None
    minutes = {T0: zero}
    assert camera_silent(minutes, T0 + 25_000, 30) is None
    assert camera_silent(minutes, T0 + 31_001 + 1000, 30) == T0 + 1000  # frames stopped at +1 s
    assert camera_silent({}, T0, 30) is None
    only_zero = merge(None, camera_observation(_report("c", frames=0), T0), 1)  # type: ignore[arg-type]
    assert camera_silent({T0: only_zero}, T0 + 31_000, 30) == T0  # never delivered a frame


def test_alert_rate_jump_needs_the_minimum_and_the_factor() -> None:
    now = T0 + 10 * MINUTE_MS + 5_000
    quiet = {T0 + i * MINUTE_MS: 1 for i in range(9)}
    assert not alert_rate({**quiet, T0 + 10 * MINUTE_MS: 2}, now, 5, 3.0, 5).jump
    burst = alert_rate({**quiet, T0 + 10 * MINUTE_MS: 6}, now, 5, 3.0, 5)
    assert burst.jump and burst.current == 6 and burst.baseline == 1.0
    busy = {T0 + i * MINUTE_MS: 4 for i in range(9)}
    assert not alert_rate({**busy, T0 + 10 * MINUTE_MS: 6}, now, 5, 3.0, 5).jump


def test_camera_reports_carry_counts_since_the_last_report_sent() -> None:
    reporter = CameraReporter(Settings())
    reporter.note("cam", faces=3, crops=2)
    docs = [
        {"camera_id": "cam", "deployment_id": "d", "frames_in": 50, "frames_analysed": 10, "connected": True}
    ]
    first = reporter.reports(docs, replica=0, now_ms=T0)
    assert (first[0]["frames"], first[0]["faces"], first[0]["crops"]) == (50, 3, 2)
    # Not sent (broker away): the next report still carries them.
    again = reporter.reports(docs, replica=0, now_ms=T0)
    assert again[0]["frames"] == 50 and again[0]["faces"] == 3
    reporter._mark_sent(again)
    reporter.note("cam", faces=1, crops=0)
    docs[0]["frames_in"] = 75
    later = reporter.reports(docs, replica=0, now_ms=T0)
    assert (later[0]["frames"], later[0]["faces"], later[0]["crops"]) == (25, 1, 0)
