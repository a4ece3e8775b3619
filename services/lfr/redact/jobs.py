"""Redaction jobs for the API: run in the background, one at a time per process, with progress.

Why in-process and not a queue: a redaction is one file and minutes of CPU; the API replica that took the
upload runs it (one at a time, so the replica's event loop and its other users keep a core) and keeps its
files in a private folder until the job is dropped or the process stops. Jobs are therefore per replica:
behind a load balancer, send the status and download calls to the same replica (session affinity), or run
``lfr redact`` as a batch job instead. Job files hold the upload and the redacted output; they are deleted
when the registry closes (API shutdown) or the job is dropped.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from lfr.core.ids import new_id
from lfr.redact.preview import LIST_NAME, SHEET_NAME
from lfr.redact.service import Redactor, RedactRequest

Status = Literal["queued", "running", "done", "failed"]


@dataclass
class Job:
    job_id: str
    actor: str
    case_ref: str
    folder: Path
    request: RedactRequest
    status: Status = "queued"
    phase: str = "queued"
    progress: float = 0.0
    error: str | None = None
    report: dict[str, Any] | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    def view(self) -> dict[str, Any]:
        tracks = None
        listing = self.folder / "preview" / LIST_NAME
        if self.status == "done" and listing.is_file():
            tracks = json.loads(listing.read_text())["tracks"]
        return {
            "job_id": self.job_id,
            "case_ref": self.case_ref,
            "actor": self.actor,
            "status": self.status,
            "phase": self.phase,
            "progress": round(self.progress, 3),
            "error": self.error,
            "report": self.report,
            "tracks": tracks,
            "has_output": self.output is not None and self.output.is_file(),
            "has_preview": self.sheet is not None,
        }

    @property
    def output(self) -> Path | None:
        return self.request.output

    @property
    def sheet(self) -> Path | None:
        p = self.folder / "preview" / SHEET_NAME
        return p if p.is_file() else None


class JobRegistry:
    """The process's redaction jobs; ``close`` deletes every job's files."""

    def __init__(self, redactor: Redactor, root: Path | None = None) -> None:
        self.redactor = redactor
        self.root = Path(tempfile.mkdtemp(prefix="lfr-redact-jobs-", dir=root))
        self.jobs: dict[str, Job] = {}
        self._one_at_a_time = asyncio.Semaphore(1)

    def folder(self) -> tuple[str, Path]:
        job_id = new_id()
        path = self.root / job_id
        path.mkdir(mode=0o700)
        return job_id, path

    def submit(self, job_id: str, folder: Path, request: RedactRequest) -> Job:
        job = Job(job_id, request.actor, request.case_ref or "", folder, request)
        self.jobs[job_id] = job
        job.task = asyncio.create_task(self._run(job))
        return job

    async def _run(self, job: Job) -> None:
        def progress(phase: str, fraction: float) -> None:
            job.phase, job.progress = phase, fraction

        async with self._one_at_a_time:
            job.status, job.phase = "running", "analyse"
            try:
                job.report = await self.redactor.run(job.request, progress)
            except Exception as exc:  # the job reports it; the audit log already has outcome=failed
                job.status, job.error = "failed", str(exc) or type(exc).__name__
                return
            finally:
                upload = job.request.source
                upload.unlink(missing_ok=True)  # the upload is not kept once redacted
            job.status, job.phase, job.progress = "done", "done", 1.0

    def get(self, job_id: str) -> Job | None:
        return self.jobs.get(job_id)

    def drop(self, job_id: str) -> bool:
        job = self.jobs.pop(job_id, None)
        if job is None:
            return False
        if job.task is not None and not job.task.done():
            job.task.cancel()
        shutil.rmtree(job.folder, ignore_errors=True)
        return True

    async def aclose(self) -> None:
        for job in self.jobs.values():
            if job.task is not None and not job.task.done():
                job.task.cancel()
        self.jobs.clear()
        shutil.rmtree(self.root, ignore_errors=True)
