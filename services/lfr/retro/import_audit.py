"""The audit records of a distributed gallery import: who submitted which listing, why, how it ended.

A gallery import changes a custody gallery by tens of millions of rows, so it is audited like any other
change: the submission writes ``gallery.import.submit`` (actor, reason, gallery, job id, number of images,
the SHA-256 of the listing) *before* the job is created or any record is published, so an import whose
record cannot be written never starts; a submission that fails after it writes
``gallery.import.submit_failed``; and the worker whose batch finishes the job writes
``gallery.import.finished`` with the job's counters. The listing's hash lets an auditor show later which
images a job covered without the audit log holding a single path: records hold ids, counts and reasons,
never images, embeddings or the image paths (which name custody records).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from lfr.retro.import_jobs import ImportJobError, JobSpec, JobStatus

log = logging.getLogger(__name__)

SUBMIT = "gallery.import.submit"
SUBMIT_FAILED = "gallery.import.submit_failed"
FINISHED = "gallery.import.finished"
WORKER_ACTOR = "service:gallery-import"  # the finished record's actor; the submitter is in its details
MIN_REASON_CHARS = 5
MAX_REASON_CHARS = 1000
FINISH_TRIES = 3


class Audit(Protocol):
    """The part of lfr.core.audit.AuditLog an import uses (a fake in unit tests)."""

    async def append(
        self, actor: str, action: str, target: str, reason: str = "", details: Mapping[str, str] | None = None
    ) -> Any: ...


def check_reason(reason: str | None) -> str:
    """The submission's reason or authority, whitespace collapsed; refused when missing or too short."""
    v = " ".join((reason or "").split())
    if len(v) < MIN_REASON_CHARS:
        raise ImportJobError(
            f"a gallery import needs a reason of at least {MIN_REASON_CHARS} characters (--reason: the "
            "authority for importing these images, e.g. the data-sharing agreement or the approval "
            "reference): it is recorded in the audit log with the job"
        )
    if len(v) > MAX_REASON_CHARS:
        raise ImportJobError(f"the reason is longer than {MAX_REASON_CHARS} characters")
    return v


def check_actor(actor: str | None) -> str:
    v = (actor or "").strip()
    if not v:
        raise ImportJobError("a gallery import needs an actor (who is submitting it) for the audit log")
    return v


def manifest_sha256(items: Iterable[str]) -> str:
    """SHA-256 of the job's listing: each relative path, UTF-8, followed by a newline, in ``seq`` order.

    Anyone holding the import root can recompute it (`lfr gallery submit` lists it the same way), and two
    jobs with the same hash covered the same images, without the audit log naming any of them.
    """
    h = hashlib.sha256()
    for item in items:
        h.update(item.encode())
        h.update(b"\n")
    return h.hexdigest()


def target(gallery: str) -> str:
    return f"gallery:{gallery}"


def submit_details(spec: JobSpec, resumed_from: int) -> dict[str, str]:
    return {
        "job_id": spec.job_id,
        "gallery": spec.gallery,
        "items": str(spec.total),
        "manifest_sha256": spec.manifest_sha256,
        "model": spec.model_id,
        "root": spec.root,
        "resumed_from": str(resumed_from),
    }


def submit_failed_details(spec: JobSpec, submitted: int, exc: BaseException) -> dict[str, str]:
    # The exception's type only: its message may quote paths under the import root.
    return {
        "job_id": spec.job_id,
        "gallery": spec.gallery,
        "items": str(spec.total),
        "submitted": str(submitted),
        "error": type(exc).__name__,
    }


def finished_details(status: JobStatus) -> dict[str, str]:
    d = status.as_dict()
    out = {
        "job_id": status.spec.job_id,
        "gallery": status.spec.gallery,
        "items": str(status.spec.total),
        "manifest_sha256": status.spec.manifest_sha256,
        "submitted_by": status.spec.actor,
        "model": status.spec.model_id,
    }
    for c in (
        "done",
        "enrolled",
        "failed",
        "failed_no_face",
        "failed_unreadable",
        "failed_missing",
        "fell_back",
        "below_quality_gate",
    ):
        out[c] = str(d[c])
    if d["seconds"] is not None:
        out["seconds"] = str(d["seconds"])
    return out


async def audit_finished(audit: Audit, status: JobStatus, retry_s: float = 1.0) -> bool:
    """Write ``gallery.import.finished``; a few tries, then an error log (the rows are written either way,
    and the job's counters in Redis still show the outcome). Returns whether the record was written."""
    details = finished_details(status)
    for attempt in range(1, FINISH_TRIES + 1):
        try:
            await audit.append(WORKER_ACTOR, FINISHED, target(status.spec.gallery), "", details)
            return True
        except Exception as exc:  # any failure to append is handled the same way
            if attempt == FINISH_TRIES:
                log.error(
                    "gallery import job %s finished but NOT audited (%s)",
                    status.spec.job_id,
                    type(exc).__name__,
                )
                return False
            await asyncio.sleep(retry_s * attempt)
    return False
