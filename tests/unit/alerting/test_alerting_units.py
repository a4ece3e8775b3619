"""Unit tests of the alerting pieces that need no broker or Redis: windows, ids, signatures, backoff,
the alert record's wire form, and the report."""

from __future__ import annotations

import csv
import io
import itertools
import json
import time

import pytest

from lfr.alerting.dedupe import alert_id_for, event_time_ms, window_start_ms
from lfr.alerting.report import build_report, render_csv
from lfr.alerting.schemas import AlertOut
from lfr.alerting.store import FIELDS, AlertState
from lfr.alerting.stream import glob_escape
from lfr.alerting.webhooks import envelope
from lfr.client.webhooks import sign, verify_signature
from lfr.core import stats
from lfr.core.ids import alert_id
from lfr.core.retry import backoff_delay
from lfr.core.serde import to_json_dict
from lfr.core.timeutil import ts_from_ms
from lfr.v1.alert_pb2 import AlertStatus
from lfr.v1.hit_pb2 import Hit

# ---- windows -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("captured", "window_s", "start"),
    [
        (0, 300, 0),
        (299_999, 300, 0),
        (300_000, 300, 300_000),
        (1_700_000_123_456, 300, 1_700_000_100_000),
        (1_700_000_123_456, 1, 1_700_000_123_000),
        (-1, 60, -60_000),  # floor, not truncation, before the epoch
    ],
)
def test_window_start_is_the_floor_of_fixed_windows(captured: int, window_s: int, start: int) -> None:
    assert window_start_ms(captured, window_s) == start


def test_window_must_be_positive() -> None:
    with pytest.raises(ValueError):
        window_start_ms(1000, 0)


def test_alert_id_is_the_same_within_a_window_and_differs_across() -> None:
    hit = Hit(deployment_id="dep-1", subject_id="s-1")
    a = alert_id_for(hit, 1_000_000, 300)
    assert a == alert_id_for(hit, 1_000_000 + 199_999, 300)  # same window [900000, 1200000)
    assert a == alert_id("dep-1", "s-1", 900_000)
    assert a != alert_id_for(hit, 1_200_000, 300)
    assert a != alert_id_for(Hit(deployment_id="dep-1", subject_id="s-2"), 1_000_000, 300)
    assert a != alert_id_for(Hit(deployment_id="dep-2", subject_id="s-1"), 1_000_000, 300)


def test_event_time_prefers_capture_then_hit_time_then_record_time() -> None:
    assert event_time_ms(Hit(captured_at=ts_from_ms(5_000), hit_at=ts_from_ms(9_000)), 1) == 5_000
    assert event_time_ms(Hit(hit_at=ts_from_ms(9_000)), 1) == 9_000
    assert event_time_ms(Hit(), 1234) == 1234


# ---- signatures ------------------------------------------------------------------------------------------


def test_signature_round_trip_and_every_tampering_fails() -> None:
    body = envelope("created", {"alert_id": "a1", "revision": 1})
    now = 1_700_000_000
    sig = sign("s3cret", now, body)
    assert sig.startswith("sha256=") and len(sig) == 7 + 64
    assert verify_signature("s3cret", body, str(now), sig, now=now)
    assert verify_signature(b"s3cret", body.encode(), now, sig, now=now + 299)
    assert not verify_signature("other", body, str(now), sig, now=now)
    assert not verify_signature("s3cret", body.replace("a1", "a2"), str(now), sig, now=now)
    assert not verify_signature("s3cret", body, str(now + 1), sig, now=now)  # timestamp is signed
    assert not verify_signature("s3cret", body, str(now), sig, now=now + 301)  # replayed late
    assert not verify_signature("s3cret", body, str(now), sig, now=now - 301)
    assert not verify_signature("s3cret", body, None, sig, now=now)
    assert not verify_signature("s3cret", body, "not-a-number", sig, now=now)
    assert not verify_signature("s3cret", body, str(now), None, now=now)
    assert not verify_signature("s3cret", body, str(now), "sha256=" + "0" * 64, now=now)


def test_signature_covers_timestamp_dot_body_exactly() -> None:
    import hashlib
    import hmac

    expected = hmac.new(b"k", b"123.{}", hashlib.sha256).hexdigest()
    assert sign("k", 123, "{}") == f"sha256={expected}"
    assert verify_signature("k", "{}", "123", f"sha256={expected}", now=123)
    assert verify_signature("k", "{}", str(int(time.time())), sign("k", int(time.time()), "{}"))


def test_envelope_is_compact_sorted_json() -> None:
    doc = json.loads(envelope("updated", {"b": 1, "a": 2}))
    assert doc == {"type": "lfr.alert.v1", "change": "updated", "alert": {"b": 1, "a": 2}}
    assert " " not in envelope("updated", {"a": 1})


# ---- backoff ---------------------------------------------------------------------------------------------


def test_backoff_grows_exponentially_is_capped_and_jittered() -> None:
    lo = [backoff_delay(n, 0.5, 30.0, rng=lambda: 0.0) for n in range(1, 10)]
    hi = [backoff_delay(n, 0.5, 30.0, rng=lambda: 1.0) for n in range(1, 10)]
    assert lo[:4] == [0.25, 0.5, 1.0, 2.0]
    assert hi[:4] == [0.5, 1.0, 2.0, 4.0]
    assert max(hi) == 30.0 and hi[-1] == 30.0 and lo[-1] == 15.0
    assert all(a <= b for a, b in itertools.pairwise(hi))
    samples = {backoff_delay(3, 0.5, 30.0) for _ in range(50)}
    assert len(samples) > 10 and all(1.0 <= s <= 2.0 for s in samples)
    assert backoff_delay(10_000, 0.5, 30.0, rng=lambda: 1.0) == 30.0  # no overflow
    with pytest.raises(ValueError):
        backoff_delay(0, 0.5, 30.0)


# ---- the alert record -------------------------------------------------------------------------------------


def _state(**overrides: object) -> AlertState:
    values = {f: "" for f in FIELDS}
    values.update(
        alert_id="a" * 32,
        deployment_id="dep-1",
        subject_id="s-1",
        watchlist_id="wl-1",
        category="wanted",
        threshold="0.6",
        window_start="1700000100000",
        first_seen="1700000123000",
        last_seen="1700000150000",
        hit_count="3",
        best_score="0.875",
        best_hit_id="h-2",
        status="pending",
        rev="3",
        pub_rev="2",
        counted="1",
    )
    values.update({k: str(v) for k, v in overrides.items()})
    return AlertState.from_values([values[f].encode() for f in FIELDS], [b"cam-2", b"cam-1"])


def test_alert_state_to_proto_and_json_mirror_carry_no_names_or_images() -> None:
    st = _state()
    assert st.revision == 3 and st.published_revision == 2 and st.counted
    pb = st.to_proto()
    assert pb.status == AlertStatus.ALERT_STATUS_PENDING
    assert list(pb.camera_ids) == ["cam-2", "cam-1"]
    assert pb.subject.display_ref == "wl-1/s-1"
    assert pb.probe_image_ref == f"/api/v1/alerts/{'a' * 32}/probe.jpg"
    mirror = to_json_dict(pb)
    assert mirror["revision"] == 3 and mirror["hit_count"] == 3
    assert mirror["status"] == "ALERT_STATUS_PENDING"
    assert "display_name" not in json.dumps(mirror)


def test_alert_out_hides_the_note_unless_asked() -> None:
    st = _state(
        status="confirmed", adj_outcome="match", adj_officer="pc-1", adj_note="tattoo matches", adj_at="5"
    )
    assert AlertOut.from_state(st).adjudication.note == ""  # type: ignore[union-attr]
    assert AlertOut.from_state(st, include_note=True).adjudication.note == "tattoo matches"  # type: ignore[union-attr]
    assert AlertOut.from_state(st).status == "confirmed"


def test_glob_escape_keeps_prefixes_literal() -> None:
    assert glob_escape("lfr-test[1]:a*?") == "lfr-test\\[1\\]:a\\*\\?"


# ---- report ------------------------------------------------------------------------------------------


def test_report_totals_rates_and_categories() -> None:
    totals = {
        stats.FACES_ANALYSED: 20_000,
        stats.HITS: 30,
        stats.ALERTS: 10,
        "alerts:category:wanted": 7,
        "alerts:category:missing": 3,
        stats.ADJ_MATCH: 4,
        "adjudicated_match:category:wanted": 4,
        stats.ADJ_NO_MATCH: 3,
        "adjudicated_no_match:category:wanted": 2,
        "adjudicated_no_match:category:missing": 1,
        stats.ADJ_UNDECIDED: 1,
        "adjudicated_unable:category:missing": 1,
    }
    r = build_report("dep-1", totals, at_ms=0)
    assert (r.faces_analysed, r.alerts, r.confirmed, r.rejected, r.unable, r.pending) == (
        20_000,
        10,
        4,
        3,
        1,
        2,
    )
    assert r.alerts_per_1000_faces == 0.5
    assert r.confirmed_share_of_decided == round(4 / 7, 4)
    cats = {c.category: c for c in r.categories}
    assert set(cats) == {"missing", "wanted"}
    assert (
        cats["wanted"].alerts,
        cats["wanted"].confirmed,
        cats["wanted"].rejected,
        cats["wanted"].pending,
    ) == (
        7,
        4,
        2,
        1,
    )
    assert (
        cats["missing"].alerts,
        cats["missing"].rejected,
        cats["missing"].unable,
        cats["missing"].pending,
    ) == (
        3,
        1,
        1,
        1,
    )
    rows = list(csv.DictReader(io.StringIO(render_csv(r))))
    assert [row["scope"] for row in rows] == ["deployment", "category:missing", "category:wanted"]
    assert rows[0]["faces_analysed"] == "20000" and rows[0]["alerts_per_1000_faces"] == "0.5"
    assert rows[2]["confirmed"] == "4"


def test_report_without_faces_has_no_rate() -> None:
    r = build_report("dep-empty", {})
    assert r.alerts == 0 and r.alerts_per_1000_faces is None and r.categories == []


def test_report_carries_what_the_officer_authorised_against() -> None:
    from lfr.watchlist.deployments import RateAtAuthorisation

    shown = RateAtAuthorisation(
        threshold=0.58,
        watchlist_size=502,
        false_alerts_per_1000=0.144,
        searches_per_person=3,
        tpir=0.441,
        tpir_person=0.685,
        tpir_person_views=3,
        summary="expected false alerts: 0.144 per 1,000 people passing",
    )
    r = build_report(
        "dep-x", {stats.FACES_ANALYSED: 10, f"{stats.ALERTS}:category:wanted": 1}, expected=shown
    )
    assert r.expected == shown
    rows = list(csv.DictReader(io.StringIO(render_csv(r))))
    assert rows[0]["threshold"] == "0.58"
    assert rows[0]["expected_false_alerts_per_1000_people"] == "0.144"
    assert rows[0]["expected_tpir"] == "0.441"
    # Category rows have no expectation of their own.
    assert rows[1]["scope"] == "category:wanted" and rows[1]["threshold"] == ""
    # Not yet authorised (or authorised before the record kept it): empty cells, never made up.
    empty = list(csv.DictReader(io.StringIO(render_csv(build_report("dep-y", {})))))
    assert empty[0]["threshold"] == "" and empty[0]["expected_false_alerts_per_1000_people"] == ""
