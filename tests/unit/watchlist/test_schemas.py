"""Input validation: ids that reach Milvus filters and Redis keys, times, and the API documents."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from pydantic import ValidationError

from lfr.core.audit import GENESIS, chain_hash
from lfr.core.timeutil import ts_from_ms
from lfr.v1.audit_pb2 import AuditEvent
from lfr.watchlist.deployments import Deployment, DeploymentSpec
from lfr.watchlist.schemas import AuditEventOut, SubjectOut, SubjectUpdate
from lfr.watchlist.store import SubjectMeta, SubjectRecord
from lfr.watchlist.types import Category, iso_s, parse_image_date, parse_when, validate_id


@pytest.mark.parametrize("good", ["wl-1", "PNC:12345", "s-abc.def_9", "a", "x" * 128, "a@b"])
def test_valid_ids(good: str) -> None:
    assert validate_id(good) == good


@pytest.mark.parametrize(
    "bad", ["", "-lead", "x" * 129, 'a" or watchlist_id != "', "a b", "a]", "wl'1", "dép", "a\nb", "a,b"]
)
def test_ids_that_could_change_a_filter_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="invalid"):
        validate_id(bad, "watchlist_id")


def test_parse_when_forms() -> None:
    assert parse_when(None) == 0 and parse_when("") == 0 and parse_when("never") == 0
    assert parse_when("1700000000") == 1_700_000_000
    assert parse_when("2026-12-31") == int(datetime(2026, 12, 31, tzinfo=UTC).timestamp())
    assert parse_when("2026-12-31T10:00:00+01:00") == int(datetime(2026, 12, 31, 9, tzinfo=UTC).timestamp())
    assert parse_when("2026-12-31T10:00:00") == int(datetime(2026, 12, 31, 10, tzinfo=UTC).timestamp())
    assert parse_when("90d", now=1000) == 1000 + 90 * 86400
    assert parse_when("12h", now=0) == 12 * 3600
    assert parse_when(date(2026, 1, 2)) == int(datetime(2026, 1, 2, tzinfo=UTC).timestamp())
    with pytest.raises(ValueError, match="cannot read time"):
        parse_when("next tuesday")
    with pytest.raises(ValueError):
        parse_when(-5)


def test_image_date_and_iso() -> None:
    assert parse_image_date("2019-05-04") == "2019-05-04"
    assert parse_image_date("2019-05-04T10:00:00") == "2019-05-04"
    assert parse_image_date("") == ""
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        parse_image_date("04/05/2019")
    assert iso_s(0) == "" and iso_s(86400) == "1970-01-02T00:00:00+00:00"


def test_subject_meta_validation() -> None:
    meta = SubjectMeta(subject_id="s1", watchlist_id="wl", category="missing", image_date="2020-01-01")
    assert meta.category is Category.MISSING and meta.expires_at == 0
    with pytest.raises(ValidationError):
        SubjectMeta(subject_id="s1", watchlist_id="wl", category="suspect")
    with pytest.raises(ValidationError):
        SubjectMeta(subject_id='x" or 1==1', watchlist_id="wl")
    with pytest.raises(ValidationError):
        SubjectMeta(subject_id="s1", watchlist_id="wl", expires_at=-1)
    with pytest.raises(ValidationError):
        SubjectMeta(subject_id="s1", watchlist_id="wl", image_date="yesterday")


def _spec(**over: object) -> dict[str, object]:
    start = datetime(2026, 6, 1, 9, 0)
    base: dict[str, object] = dict(
        name="Cup final",
        location="North gate",
        purpose="wanted persons",
        starts_at=start,
        ends_at=start + timedelta(hours=8),
        authorising_officer="Supt Khan",
        watchlist_ids=["wl-a", "wl-a", "wl-b"],
    )
    base.update(over)
    return base


def test_deployment_spec_rules() -> None:
    spec = DeploymentSpec.model_validate(_spec())
    assert spec.starts_at.tzinfo is UTC  # naive input is read as UTC
    assert spec.watchlist_ids == ["wl-a", "wl-b"]  # duplicates removed, order kept
    with pytest.raises(ValidationError, match="ends_at must be after starts_at"):
        DeploymentSpec.model_validate(_spec(ends_at=datetime(2026, 6, 1, 8, 0)))
    with pytest.raises(ValidationError):
        DeploymentSpec.model_validate(_spec(watchlist_ids=[]))
    with pytest.raises(ValidationError):
        DeploymentSpec.model_validate(_spec(watchlist_ids=["bad id"]))
    with pytest.raises(ValidationError, match="blank"):
        DeploymentSpec.model_validate(_spec(purpose="   "))
    with pytest.raises(ValidationError):
        DeploymentSpec.model_validate(_spec(authorising_officer=""))


def test_deployment_round_trips_through_json() -> None:
    now = datetime(2026, 5, 1, tzinfo=UTC)
    dep = Deployment.model_validate(
        {
            **_spec(),
            "deployment_id": "dep-1",
            "embedder_model": "m",
            "created_by": "pc",
            "created_at": now,
            "updated_at": now,
        }
    )
    assert Deployment.model_validate_json(dep.model_dump_json()) == dep
    with pytest.raises(ValidationError):
        Deployment.model_validate({**dep.model_dump(), "deployment_id": "dep 1"})


def test_subject_out_and_update_documents() -> None:
    rec = SubjectRecord(
        subject_id="s1",
        watchlist_id="wl",
        display_name="A Person",
        expires_at=86400,
        enrolled_at=1,
        images=2,
        image_ids=["p1", "p2"],
        thumbnail="abc",
    )
    out = SubjectOut.of(rec)
    assert out.expires_at_iso == "1970-01-02T00:00:00+00:00" and out.images == 2 and out.thumbnail == "abc"
    upd = SubjectUpdate(expires_at="90d")
    assert upd.model_dump(exclude={"reason"}, exclude_none=True) == {"expires_at": "90d"}


def test_audit_event_document() -> None:
    ev = AuditEvent(
        seq=1,
        event_id="e",
        actor="pc",
        action="watchlist.enrol",
        target="wl/s1",
        time=ts_from_ms(1000),
        details={"n": "1"},
        prev_hash=GENESIS,
    )
    ev.hash = chain_hash(ev)
    out = AuditEventOut.of(ev)
    assert out.seq == 1 and out.details == {"n": "1"} and out.time.startswith("1970-01-01T00:00:01")
