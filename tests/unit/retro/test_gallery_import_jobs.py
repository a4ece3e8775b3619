"""Splitting a gallery import into records, and the done-bitmap that keeps redelivery from counting twice.

The Redis tests run the mark-done script on a real redis-server (the one the local stack uses), started
for this module on a free loopback port with no persistence (conftest.py).
"""

from __future__ import annotations

import pytest

from lfr.retro.import_jobs import (
    Finished,
    ImportJobError,
    JobSpec,
    JobStatus,
    JobStore,
    check_job_id,
    new_job_id,
    outcome_fields,
    records_for,
    safe_item,
)

from .job_store_support import run_with_store as _run

ITEMS = [f"rec{i // 3:03d}/img{i % 3}.jpg" for i in range(10)] + ["flat_person.png"]
SPEC = JobSpec("job-1", "custody", "/mnt/custody", len(ITEMS), "sface-2021dec", 1_700_000_000_000)


def test_records_cover_every_item_once_in_order_across_chunks() -> None:
    chunks = [list(records_for(SPEC, ITEMS, s, s + 4)) for s in range(0, len(ITEMS), 4)]
    recs = [r for c in chunks for r in c]
    assert [r.seq for r in recs] == list(range(len(ITEMS)))
    assert [r.item for r in recs] == ITEMS
    assert {(r.job_id, r.gallery, r.root, r.embedder_model_id) for r in recs} == {
        ("job-1", "custody", "/mnt/custody", "sface-2021dec")
    }
    assert recs[0].subject_id == "rec000" and recs[-1].subject_id == "flat_person"
    assert recs[0].submitted_at.ToMilliseconds() == SPEC.created_ms
    # A resumed submission starts at its acknowledged count and ends at the listing's end.
    assert [r.seq for r in records_for(SPEC, ITEMS, 8)] == [8, 9, 10]
    assert list(records_for(SPEC, ITEMS, 11)) == []


def test_records_carry_paths_never_image_bytes() -> None:
    rec = next(records_for(SPEC, ITEMS))
    assert len(rec.SerializeToString()) < 200
    assert {f.name for f in rec.DESCRIPTOR.fields}.isdisjoint({"image", "data", "bytes", "vector"})


@pytest.mark.parametrize(
    ("item", "ok"),
    [
        ("rec1/a.jpg", True),
        ("a.jpg", True),
        ("deep/er/a b.jpg", True),
        ("../etc/passwd", False),
        ("rec1/../../x.jpg", False),
        ("/etc/passwd", False),
        ("rec1//a.jpg", False),
        ("./a.jpg", False),
        ("rec1\\..\\a.jpg", False),
        ("a\x00.jpg", False),
        ("", False),
    ],
)
def test_safe_item_refuses_paths_leaving_the_root(item: str, ok: bool) -> None:
    assert safe_item(item) is ok


def test_outcome_fields() -> None:
    assert outcome_fields("ok", True) == "enrolled"
    assert outcome_fields("padded", False) == "enrolled,below_quality_gate"
    assert outcome_fields("fell_back", True) == "enrolled,fell_back"
    assert outcome_fields("no_face", False) == "failed,failed_no_face"
    assert outcome_fields("missing", False) == "failed,failed_missing"


def test_job_ids() -> None:
    assert check_job_id(new_job_id("custody_2026")).startswith("custody-2026-")
    for bad in ("", "Job", "a/b", "x" * 81, "{x}"):
        with pytest.raises(ImportJobError):
            check_job_id(bad)


def test_status_rate_and_eta() -> None:
    st = JobStatus(SPEC, {"done": 5, "enrolled": 4, "failed": 1}, 1_000, 3_000, None)
    d = st.as_dict()
    assert d["images_per_s"] == 2.5 and d["eta_s"] == round(6 / 2.5) and d["state"] == "running"
    assert JobStatus(SPEC, {}, None, None, None).as_dict()["state"] == "queued"
    done = JobStatus(SPEC, {"done": len(ITEMS)}, 1_000, 5_000, 5_000).as_dict()
    assert done["state"] == "finished" and done["eta_s"] == 0


def test_marking_twice_counts_once_and_finishes_once(redis_url: str) -> None:
    async def body(jobs: JobStore) -> None:
        spec = JobSpec(new_job_id("t"), "custody", "/r", 4, "m", 1)
        await jobs.create(spec)
        with pytest.raises(ImportJobError):
            await jobs.create(spec)
        first = [Finished(0, "enrolled"), Finished(1, "failed,failed_no_face", "rec/b.jpg")]
        assert await jobs.mark_done(spec.job_id, first) == (2, 2, False)
        # Redelivery of the same batch (a crash after marking, before the commit): nothing changes.
        assert await jobs.mark_done(spec.job_id, first) == (0, 2, False)
        assert await jobs.done_mask(spec.job_id, [0, 1, 2, 3]) == [True, True, False, False]
        # A batch overlapping the first: only its new item counts.
        assert await jobs.mark_done(
            spec.job_id, [Finished(1, "enrolled"), Finished(2, "enrolled,fell_back")]
        ) == (
            1,
            3,
            False,
        )
        assert await jobs.mark_done(spec.job_id, [Finished(3, "enrolled")]) == (1, 4, True)
        assert await jobs.mark_done(spec.job_id, [Finished(3, "enrolled")]) == (0, 4, False)
        st = await jobs.status(spec.job_id)
        assert st.finished
        assert {k: st.counters[k] for k in ("done", "enrolled", "failed", "fell_back", "failed_no_face")} == {
            "done": 4,
            "enrolled": 3,
            "failed": 1,
            "fell_back": 1,
            "failed_no_face": 1,
        }
        assert await jobs.failed_items(spec.job_id) == ["rec/b.jpg"]

    _run(redis_url, body)


def test_done_bitmap_is_a_bit_per_image(redis_url: str) -> None:
    """Sixteen million images cost two megabytes of done-set, whatever their path lengths."""

    async def body(jobs: JobStore) -> int:
        spec = JobSpec(new_job_id("big"), "custody", "/r", 16_000_000, "m", 1)
        await jobs.create(spec)
        await jobs.mark_done(spec.job_id, [Finished(15_999_999, "enrolled")])
        _, bits, _ = jobs._keys(spec.job_id)
        return int(await jobs.redis.strlen(bits))

    assert _run(redis_url, body) == 2_000_000


def test_unknown_job_status(redis_url: str) -> None:
    async def body(jobs: JobStore) -> None:
        assert await jobs.spec("nope") is None
        with pytest.raises(ImportJobError, match="no import job"):
            await jobs.status("nope")

    _run(redis_url, body)
