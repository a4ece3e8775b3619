"""The audit records of a distributed gallery import, with a fake audit log and a fake broker producer.

Job state runs on a real redis-server (conftest.py): the submission's ordering is what is under test, i.e.
that the audit record is written before the gallery, the job or any record exists, and that a submission
whose record cannot be written leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import pytest

from lfr.retro import import_audit
from lfr.retro.gallery import GalleryError
from lfr.retro.import_audit import (
    audit_finished,
    check_actor,
    check_reason,
    finished_details,
    manifest_sha256,
)
from lfr.retro.import_jobs import ImportJobError, JobSpec, JobStatus, JobStore, new_job_id
from lfr.retro.import_submit import AuditUnavailableError, submit_listing

from .job_store_support import run_with_store as _run

ITEMS = [f"rec{i // 3:03d}/img{i % 3}.jpg" for i in range(10)] + ["flat_person.png"]
ROOT = Path("/mnt/custody")
REASON = "Custody image sharing approval CIS-2026-114"
T = TypeVar("T")


class FakeAudit:
    """Records appends in the shared event list; fails the appends of the actions named in ``fail``."""

    def __init__(self, events: list[str], fail: tuple[str, ...] = ()) -> None:
        self.events = events
        self.fail = fail
        self.records: list[dict[str, Any]] = []

    async def append(
        self, actor: str, action: str, target: str, reason: str = "", details: Mapping[str, str] | None = None
    ) -> None:
        self.events.append(f"audit:{action}")
        if action in self.fail:
            raise ConnectionError("broker away")
        self.records.append(
            {
                "actor": actor,
                "action": action,
                "target": target,
                "reason": reason,
                "details": dict(details or {}),
            }
        )


class FakeProducer:
    """aiokafka's ``send``: returns a future per record; fails from the ``fail_at``-th record on."""

    def __init__(self, events: list[str], fail_at: int | None = None) -> None:
        self.events = events
        self.fail_at = fail_at
        self.sent: list[bytes] = []

    async def send(self, topic: str, value: bytes, key: bytes, headers: Any) -> asyncio.Future[None]:
        if self.fail_at is not None and len(self.sent) >= self.fail_at:
            raise ConnectionError("broker away")
        self.events.append("send")
        self.sent.append(key)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut


async def _submit(
    jobs: JobStore,
    audit: FakeAudit,
    producer: FakeProducer,
    events: list[str],
    items: list[str] = ITEMS,
    **kw: Any,
) -> JobStatus:
    return await submit_listing(
        jobs,
        audit,
        producer,
        lambda: events.append("ensure_gallery"),
        ROOT,
        items,
        "custody",
        "sface-2021dec",
        actor=kw.pop("actor", "alice"),
        reason=kw.pop("reason", REASON),
        chunk=kw.pop("chunk", 4),
        **kw,
    )


def test_reason_and_actor_are_required() -> None:
    for missing in (None, "", "   ", "todo"):
        with pytest.raises(ImportJobError, match="needs a reason of at least 5 characters"):
            check_reason(missing)
    with pytest.raises(ImportJobError, match="longer than 1000"):
        check_reason("x" * 1001)
    assert check_reason("  approval   CIS-1\n") == "approval CIS-1"
    with pytest.raises(ImportJobError, match="needs an actor"):
        check_actor(" ")


def test_manifest_hash_is_the_listing_in_order() -> None:
    assert manifest_sha256(["a.jpg", "b/c.jpg"]) == hashlib.sha256(b"a.jpg\nb/c.jpg\n").hexdigest()
    assert manifest_sha256(ITEMS) != manifest_sha256(list(reversed(ITEMS)))
    assert manifest_sha256(["ab"]) != manifest_sha256(["a", "b"])


def test_submission_is_audited_before_anything_is_created(redis_url: str) -> None:
    events: list[str] = []
    audit, producer = FakeAudit(events), FakeProducer(events)

    async def body(jobs: JobStore) -> JobStatus:
        return await _submit(jobs, audit, producer, events, actor="alice")

    status = _run(redis_url, body)
    assert events[0] == "audit:gallery.import.submit" and events[1] == "ensure_gallery"
    assert events.count("send") == len(ITEMS) and status.counters["submitted"] == len(ITEMS)
    (rec,) = audit.records
    assert (rec["actor"], rec["action"], rec["target"], rec["reason"]) == (
        "alice",
        "gallery.import.submit",
        "gallery:custody",
        REASON,
    )
    assert rec["details"] == {
        "job_id": status.spec.job_id,
        "gallery": "custody",
        "items": str(len(ITEMS)),
        "manifest_sha256": manifest_sha256(ITEMS),
        "model": "sface-2021dec",
        "root": str(ROOT),
        "resumed_from": "0",
    }
    # No image path reaches the audit log (they name custody records); the job keeps hash and submitter.
    assert not any(i in v or i.split("/")[0] in v for v in rec["details"].values() for i in ITEMS)
    assert (status.spec.manifest_sha256, status.spec.actor) == (manifest_sha256(ITEMS), "alice")
    assert status.as_dict()["submitted_by"] == "alice"


def test_submission_whose_audit_record_fails_leaves_nothing(redis_url: str) -> None:
    events: list[str] = []
    audit, producer = FakeAudit(events, fail=(import_audit.SUBMIT,)), FakeProducer(events)
    job = new_job_id("custody")

    async def body(jobs: JobStore) -> JobSpec | None:
        with pytest.raises(AuditUnavailableError, match="audit record could not be written"):
            await _submit(jobs, audit, producer, events, job_id=job)
        return await jobs.spec(job)

    assert _run(redis_url, body) is None
    assert events == ["audit:gallery.import.submit"] and producer.sent == []


def test_failed_submission_is_audited_and_resumption_is_audited_again(redis_url: str) -> None:
    events: list[str] = []
    audit = FakeAudit(events)
    job = new_job_id("custody")

    async def body(jobs: JobStore) -> JobStatus:
        with pytest.raises(ConnectionError):
            await _submit(jobs, audit, FakeProducer(events, fail_at=6), events, job_id=job)
        assert (await jobs.status(job)).counters["submitted"] == 4  # the first acknowledged chunk
        return await _submit(jobs, audit, FakeProducer(events), events, job_id=job, actor="bob")

    status = _run(redis_url, body)
    assert status.counters["submitted"] == len(ITEMS)
    actions = [(r["actor"], r["action"]) for r in audit.records]
    assert actions == [
        ("alice", "gallery.import.submit"),
        ("alice", "gallery.import.submit_failed"),
        ("bob", "gallery.import.submit"),
    ]
    failed = audit.records[1]["details"]
    assert (failed["job_id"], failed["submitted"], failed["error"]) == (job, "4", "ConnectionError")
    resumed = audit.records[2]["details"]
    assert (resumed["resumed_from"], resumed["manifest_sha256"]) == ("4", manifest_sha256(ITEMS))
    assert events.count("ensure_gallery") == 1, "a resumed job's gallery exists already"


def test_resumption_with_another_listing_is_refused_unaudited(redis_url: str) -> None:
    events: list[str] = []
    audit = FakeAudit(events)
    job = new_job_id("custody")
    renamed = [*ITEMS[:-1], "another_person.png"]  # same count, other images

    async def body(jobs: JobStore) -> None:
        await _submit(jobs, audit, FakeProducer(events), events, job_id=job)
        with pytest.raises(GalleryError, match="with other paths: submit it as a new job"):
            await _submit(jobs, audit, FakeProducer(events), events, items=renamed, job_id=job)
        with pytest.raises(ImportJobError, match="reason"):
            await _submit(jobs, audit, FakeProducer(events), events, job_id=job, reason="")

    _run(redis_url, body)
    assert [r["action"] for r in audit.records] == ["gallery.import.submit"]


def _finished_status() -> JobStatus:
    spec = JobSpec("custody-1", "custody", str(ROOT), 11, "sface-2021dec", 1, manifest_sha256(ITEMS), "alice")
    counters = {"done": 11, "enrolled": 9, "failed": 2, "failed_no_face": 2, "fell_back": 1, "submitted": 11}
    return JobStatus(spec, counters, 1_000, 5_000, 5_000)


def test_finished_record_names_the_submitter_and_the_counters() -> None:
    events: list[str] = []
    audit = FakeAudit(events)
    assert asyncio.run(audit_finished(audit, _finished_status()))
    (rec,) = audit.records
    assert (rec["actor"], rec["action"], rec["target"]) == (
        "service:gallery-import",
        "gallery.import.finished",
        "gallery:custody",
    )
    d = rec["details"]
    assert (d["submitted_by"], d["items"], d["enrolled"], d["failed_no_face"], d["seconds"]) == (
        "alice",
        "11",
        "9",
        "2",
        "4.0",
    )
    assert d["manifest_sha256"] == manifest_sha256(ITEMS)
    assert d == finished_details(_finished_status())


def test_finished_record_is_retried_then_logged(caplog: pytest.LogCaptureFixture) -> None:
    events: list[str] = []
    audit = FakeAudit(events, fail=(import_audit.FINISHED,))
    assert not asyncio.run(audit_finished(audit, _finished_status(), retry_s=0))
    assert events == ["audit:gallery.import.finished"] * import_audit.FINISH_TRIES
    assert "finished but NOT audited" in caplog.text and "rec0" not in caplog.text
