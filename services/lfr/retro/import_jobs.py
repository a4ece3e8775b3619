"""Distributed gallery import jobs: how a job is split into records, and its state in Redis.

A job is the sorted listing of an import root: item ``seq`` is the ``seq``-th image path. Its state is
three Redis keys under one hash tag (so they share a slot on Redis Cluster): a hash of counters, a bitmap
with bit ``seq`` set once the item is done, and a capped list of the items that failed to enrol.

Why a bitmap as the done-set: a national custody gallery has tens of millions of images, and a bit per
image (16 M images: 2 MB) is the cheapest set that answers "was this one finished?" atomically. The
mark-done script sets the bits and counts only the ones that were clear, so a record delivered twice
(after a worker crash or a rebalance) never counts twice; the gallery row id is derived from gallery and
item, so an image embedded twice before its bit was set replaces its own row instead of adding one.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

from lfr.core.config import Settings
from lfr.core.ids import new_id
from lfr.core.redis_client import key, text
from lfr.core.timeutil import ts_from_ms
from lfr.retro.gallery import subject_for
from lfr.v1.gallery_import_pb2 import GalleryImportItem

JOB_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,79}$")
JOB_TTL_S = 30 * 24 * 3600  # job state outlives any import; refreshed by every batch
FAILED_CAP = 100_000  # failed items listed per job (the counters stay exact beyond it)
COUNTERS = (
    "submitted",
    "done",
    "enrolled",
    "failed",
    "fell_back",
    "below_quality_gate",
    "failed_no_face",
    "failed_unreadable",
    "failed_missing",
)

# KEYS: job hash, done bitmap, failed list. ARGV: now_ms, failed cap, ttl_s, then (seq, fields, failed item)
# triples; ``fields`` is a comma-separated list of counters to increment when the seq was not done yet.
_MARK_DONE = """
local new = 0
for i = 4, #ARGV, 3 do
  if redis.call('SETBIT', KEYS[2], tonumber(ARGV[i]), 1) == 0 then
    new = new + 1
    for field in string.gmatch(ARGV[i + 1], '[^,]+') do
      redis.call('HINCRBY', KEYS[1], field, 1)
    end
    if ARGV[i + 2] ~= '' and redis.call('LLEN', KEYS[3]) < tonumber(ARGV[2]) then
      redis.call('RPUSH', KEYS[3], ARGV[i + 2])
    end
  end
end
local done = redis.call('HINCRBY', KEYS[1], 'done', new)
local finished = 0
if new > 0 then
  redis.call('HSETNX', KEYS[1], 'first_done_ms', ARGV[1])
  redis.call('HSET', KEYS[1], 'last_done_ms', ARGV[1])
  if done == tonumber(redis.call('HGET', KEYS[1], 'total') or '-1') then
    redis.call('HSET', KEYS[1], 'finished_ms', ARGV[1])
    finished = 1
  end
end
for k = 1, 3 do
  redis.call('EXPIRE', KEYS[k], tonumber(ARGV[3]))
end
return {new, done, finished}
"""


class ImportJobError(RuntimeError):
    """The job cannot be created, resumed or read as asked; the message says why."""


def check_job_id(job_id: str) -> str:
    if not JOB_ID.match(job_id or ""):
        raise ImportJobError(f"invalid job id {job_id!r}: 1-80 characters, a-z, 0-9, _ and -")
    return job_id


def new_job_id(gallery: str) -> str:
    return f"{gallery.replace('_', '-')[:60]}-{new_id()[:12]}"


def safe_item(item: str) -> bool:
    """Whether ``item`` is a plain relative path (no absolute path, no ``..``): a record naming anything
    else could make a worker read files outside the import root."""
    if not item or "\\" in item or "\x00" in item:
        return False
    p = PurePosixPath(item)
    return not p.is_absolute() and all(part not in ("..", ".", "") for part in item.split("/"))


@dataclass(frozen=True)
class JobSpec:
    job_id: str
    gallery: str
    root: str
    total: int
    model_id: str
    created_ms: int
    # The listing's SHA-256 (lfr.retro.import_audit.manifest_sha256): a resumed submission must list the
    # same images, and the audit records name the listing by it. Empty for jobs from before it was kept.
    manifest_sha256: str = ""
    actor: str = ""  # who submitted the job (also in its audit record)


def records_for(
    spec: JobSpec, items: Sequence[str], start: int = 0, stop: int | None = None
) -> Iterator[GalleryImportItem]:
    """The job's records for ``items[start:stop]`` (``items`` being the job's whole sorted listing)."""
    submitted_at = ts_from_ms(spec.created_ms)
    for seq in range(start, len(items) if stop is None else min(stop, len(items))):
        item = items[seq]
        yield GalleryImportItem(
            job_id=spec.job_id,
            gallery=spec.gallery,
            root=spec.root,
            item=item,
            subject_id=subject_for(item),
            seq=seq,
            embedder_model_id=spec.model_id,
            submitted_at=submitted_at,
        )


def outcome_fields(status: str, quality_passed: bool) -> str:
    """The counters one finished item increments (lfr.vision.photo_embedding statuses)."""
    if status in ("no_face", "unreadable", "missing"):
        return f"failed,failed_{status}"
    fields = ["enrolled"]
    if status == "fell_back":
        fields.append("fell_back")
    if not quality_passed:
        fields.append("below_quality_gate")
    return ",".join(fields)


@dataclass(frozen=True)
class Finished:
    seq: int
    fields: str
    failed_item: str = ""


@dataclass(frozen=True)
class JobStatus:
    spec: JobSpec
    counters: dict[str, int]
    first_done_ms: int | None
    last_done_ms: int | None
    finished_ms: int | None

    @property
    def done(self) -> int:
        return self.counters.get("done", 0)

    @property
    def finished(self) -> bool:
        return self.finished_ms is not None

    def rate(self) -> float | None:
        """Images finished per second between the first and the latest finished batch."""
        if self.first_done_ms is None or self.last_done_ms is None or self.last_done_ms <= self.first_done_ms:
            return None
        return self.done / ((self.last_done_ms - self.first_done_ms) / 1000)

    def as_dict(self) -> dict[str, Any]:
        rate = self.rate()
        left = self.spec.total - self.done
        return {
            "job": self.spec.job_id,
            "gallery": self.spec.gallery,
            "root": self.spec.root,
            "model": self.spec.model_id,
            "manifest_sha256": self.spec.manifest_sha256,
            "submitted_by": self.spec.actor,
            "total": self.spec.total,
            **{c: self.counters.get(c, 0) for c in COUNTERS},
            "state": "finished" if self.finished else ("running" if self.done else "queued"),
            "images_per_s": round(rate, 2) if rate else None,
            "eta_s": round(left / rate) if rate and left else (0 if not left else None),
            "seconds": round((self.last_done_ms - self.first_done_ms) / 1000, 1)
            if self.first_done_ms is not None and self.last_done_ms is not None
            else None,
        }


class JobStore:
    """Import jobs in Redis (async): creation, the submission mark, done-marking and status."""

    def __init__(self, settings: Settings, redis: aioredis.Redis) -> None:
        self.settings = settings
        self.redis = redis
        self._mark: AsyncScript = redis.register_script(_MARK_DONE)

    def _keys(self, job_id: str) -> tuple[str, str, str]:
        base = key(self.settings, "gallery-import", "{" + check_job_id(job_id) + "}")
        return base, f"{base}:done", f"{base}:failed"

    async def create(self, spec: JobSpec) -> None:
        h, _, _ = self._keys(spec.job_id)
        fields: dict[Any, str | int] = {
            "gallery": spec.gallery,
            "root": spec.root,
            "total": spec.total,
            "model": spec.model_id,
            "created_ms": spec.created_ms,
            "manifest": spec.manifest_sha256,
            "actor": spec.actor,
        }
        if not await self.redis.hsetnx(h, "gallery", spec.gallery):
            raise ImportJobError(f"import job {spec.job_id} exists already")
        await self.redis.hset(h, mapping={**fields, **dict.fromkeys(COUNTERS, 0)})
        await self.redis.expire(h, JOB_TTL_S)

    async def spec(self, job_id: str) -> JobSpec | None:
        h, _, _ = self._keys(job_id)
        raw = await self.redis.hmget(
            h, ["gallery", "root", "total", "model", "created_ms", "manifest", "actor"]
        )
        if raw[0] is None:
            return None
        g, root, total, model, created, manifest, actor = (text(v) for v in raw)
        return JobSpec(job_id, g, root, int(total or 0), model, int(created or 0), manifest, actor)

    async def set_submitted(self, job_id: str, n: int) -> None:
        h, _, _ = self._keys(job_id)
        await self.redis.hset(h, "submitted", n)
        await self.redis.expire(h, JOB_TTL_S)

    async def done_mask(self, job_id: str, seqs: Sequence[int]) -> list[bool]:
        """Which of ``seqs`` are finished already (a cheap skip before re-embedding a redelivered image)."""
        _, bits, _ = self._keys(job_id)
        pipe = self.redis.pipeline(transaction=False)
        for s in seqs:
            pipe.getbit(bits, s)
        return [bool(v) for v in await pipe.execute()]

    async def mark_done(self, job_id: str, finished: Iterable[Finished]) -> tuple[int, int, bool]:
        """Set the items' done bits and count the ones not done before: (newly done, done, job finished)."""
        h, bits, failed = self._keys(job_id)
        args: list[str | int] = [int(time.time() * 1000), FAILED_CAP, JOB_TTL_S]
        for f in finished:
            args += [f.seq, f.fields, f.failed_item]
        new, done, fin = await self._mark(keys=[h, bits, failed], args=args)
        return int(new), int(done), bool(fin)

    async def status(self, job_id: str) -> JobStatus:
        h, _, _ = self._keys(job_id)
        raw = {text(k): text(v) for k, v in (await self.redis.hgetall(h)).items()}
        if not raw:
            raise ImportJobError(f"no import job {job_id} (jobs are kept {JOB_TTL_S // 86400} days)")

        def opt(name: str) -> int | None:
            return int(raw[name]) if raw.get(name) else None

        spec = JobSpec(
            job_id,
            raw["gallery"],
            raw.get("root", ""),
            int(raw.get("total", 0)),
            raw.get("model", ""),
            int(raw.get("created_ms", 0)),
            raw.get("manifest", ""),
            raw.get("actor", ""),
        )
        counters = {c: int(raw.get(c, 0)) for c in COUNTERS}
        return JobStatus(spec, counters, opt("first_done_ms"), opt("last_done_ms"), opt("finished_ms"))

    async def failed_items(self, job_id: str, limit: int = 1000) -> list[str]:
        _, _, failed = self._keys(job_id)
        return [text(v) for v in await self.redis.lrange(failed, 0, limit - 1)]
