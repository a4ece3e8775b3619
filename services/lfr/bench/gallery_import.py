"""`lfr bench gallery-import`: distributed gallery import throughput with 1, 2, ... worker processes.

Runs on a private temporary stack (broker, Redis, Milvus Lite), so it never disturbs a running one. For each
worker count it starts that many real `lfr gallery worker` processes, waits until the consumer group has
handed every partition of lfr.gallery-import.v1 to them (read from each worker's /metrics), submits one job
of the same real face photos into a fresh gallery and follows the job's counters in Redis until it
finishes. The figure is the steady rate, images finished per second between 10 % and 90 % of the job:
model loading and group joins happen before the job is submitted and the last partial batches after, so
neither is counted. The whole job's wall time from submission is reported beside it, and so is the CPU
the workers and the stack spent per image, which does not depend on how busy the machine was. Each worker
runs in its own session (see ``_one_run``).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from lfr.core.config import Settings, load_settings
from lfr.core.images import list_images
from lfr.core.observability import find_services
from lfr.core.topics import GALLERY_IMPORT_PARTITIONS
from lfr.modelbuild import build_models
from lfr.retro.gallery import Gallery
from lfr.retro.import_submit import job_status, submit_import
from lfr.retro.import_worker import STAGE
from lfr.vision import find_card

STEADY = (0.1, 0.9)


def image_tree(source: Path, n: int, dest: Path) -> int:
    """The first ``n`` images of ``source`` (sorted) as links under ``dest``, keeping their record folders."""
    photos = list_images(source)[:n]
    if not photos:
        raise RuntimeError(f"no images under {source}")
    for p in photos:
        link = dest / p.relative_to(source)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(p)
        p.read_bytes()  # into the page cache: every run reads warm files
    return len(photos)


def steady_rate(samples: list[tuple[float, int]], total: int) -> float | None:
    """Images per second between the samples where the job passed 10 % and 90 % of ``total``."""
    lo = next(((t, d) for t, d in samples if d >= STEADY[0] * total), None)
    hi = next(((t, d) for t, d in samples if d >= STEADY[1] * total), None)
    if lo is None or hi is None or hi[0] <= lo[0]:
        return None
    return (hi[1] - lo[1]) / (hi[0] - lo[0])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process (all its threads), from /proc; 0.0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu(pids: list[int]) -> float:
    return sum(cpu_seconds(p) for p in pids)


def _worker_env(settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "LFR_DATA_DIR": str(settings.data_dir),
        "LFR_MODELS__DIR": str(settings.models_dir),
        "LFR_MODELS__EMBEDDER": settings.models.embedder,
        "LFR_MODELS__DETECTOR": settings.models.detector,
        "LFR_OBSERVABILITY__LOG_LEVEL": "WARNING",
    }


def _assigned(pids: set[int], data_dir: Path) -> dict[int, int]:
    """Partitions each worker holds now, from the stage gauge on its /metrics (absent: not answering yet)."""
    out: dict[int, int] = {}
    for svc in find_services(data_dir):
        if int(svc.get("pid", 0)) not in pids:
            continue
        try:
            with urllib.request.urlopen(f"{svc['health_url']}/metrics", timeout=2) as resp:
                text = resp.read().decode()
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith("lfr_stage_assigned_partitions") and f'stage="{STAGE}"' in line:
                out[int(svc["pid"])] = int(float(line.rsplit(" ", 1)[1]))
    return out


def _wait_group(procs: list[subprocess.Popen[bytes]], data_dir: Path, timeout_s: float) -> float:
    """Seconds until every partition is held and every worker holds some, steady for 3 s."""
    t0 = time.monotonic()
    pids = {p.pid for p in procs}
    steady_since: float | None = None
    while True:
        if any(p.poll() is not None for p in procs):
            raise RuntimeError("a gallery import worker exited during start-up")
        a = _assigned(pids, data_dir)
        ok = len(a) == len(pids) and all(a.values()) and sum(a.values()) == GALLERY_IMPORT_PARTITIONS
        now = time.monotonic()
        steady_since = (steady_since or now) if ok else None
        if steady_since is not None and now - steady_since >= 3.0:
            return round(now - t0, 1)
        if now - t0 > timeout_s:
            raise RuntimeError(f"the group did not settle within {timeout_s}s: {a}")
        time.sleep(0.5)


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10)


async def _follow(settings: Settings, job: str, total: int, t_submit: float) -> list[tuple[float, int]]:
    samples: list[tuple[float, int]] = []
    while True:
        st = await job_status(settings, job)
        samples.append((time.monotonic() - t_submit, st.done))
        if st.finished:
            return samples
        await asyncio.sleep(0.5)


def _one_run(
    settings: Settings, tree: Path, total: int, workers: int, cpus: list[int] | None, shared_pids: list[int]
) -> dict[str, Any]:
    card = find_card(settings.models_dir, settings.models.embedder)
    gallery = f"bench_{uuid.uuid4().hex[:8]}"
    log = (settings.data_dir / f"workers-{workers}.log").open("ab")
    procs = []
    for i in range(workers):
        pin = ["taskset", "-c", str(cpus[i % len(cpus)])] if cpus else []
        procs.append(
            subprocess.Popen(
                [*pin, sys.executable, "-m", "lfr.cli", "gallery", "worker"],
                env=_worker_env(settings),
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own session, as a pod would be its own container: with Linux autogroup scheduling
                # (sched_autogroup_enabled) every process of one session shares one session's CPU share,
                # so workers started in the bench's session could never use more than one share together.
                start_new_session=True,
            )
        )
    try:
        join_s = _wait_group(procs, settings.data_dir, 180)
        worker_pids = [p.pid for p in procs]
        cpu0 = (_cpu(worker_pids), _cpu(shared_pids))
        t_submit = time.monotonic()
        status = asyncio.run(
            submit_import(
                settings,
                tree,
                gallery,
                card,
                actor="lfr-bench",
                reason="throughput benchmark on a private stack",
            )
        )
        submitted_s = time.monotonic() - t_submit
        samples = asyncio.run(_follow(settings, status.spec.job_id, total, t_submit))
        worker_cpu, shared_cpu = _cpu(worker_pids) - cpu0[0], _cpu(shared_pids) - cpu0[1]
        final = asyncio.run(job_status(settings, status.spec.job_id))
    finally:
        _stop(procs)
        log.close()
    g = Gallery(settings, gallery, card)
    try:
        rows = g.count()
        g.drop()
    finally:
        g.close()
    rate = steady_rate(samples, total)
    return {
        "workers": workers,
        "images": total,
        "rows": rows,
        "enrolled": final.counters["enrolled"],
        "failed_to_enrol": final.counters["failed"],
        "group_settled_s": join_s,
        "submit_s": round(submitted_s, 2),
        "job_wall_s": round(samples[-1][0], 1),
        "steady_images_per_s": round(rate, 2) if rate else None,
        # CPU spent on the job, whatever else the machine ran: the load-independent cost per image.
        "worker_cpu_ms_per_image": round(1000 * worker_cpu / total, 1),
        "stack_cpu_ms_per_image": round(1000 * shared_cpu / total, 1),
    }


def bench_gallery_import(
    settings: Settings,
    images: int = 2000,
    workers: tuple[int, ...] = (1, 2),
    source: Path | None = None,
    cpus: list[int] | None = None,
) -> dict[str, Any]:
    from lfr.core.shared_data import shared_faces_dir
    from lfr.stack.local import LocalStack

    source = source or shared_faces_dir() / "cfp" / "images"
    build_models(settings.models_dir)
    with tempfile.TemporaryDirectory(prefix="lfr-bench-gimport-") as tmp:
        tree = Path(tmp) / "tree"
        total = image_tree(source, images, tree)
        stack_settings = load_settings(
            data_dir=Path(tmp) / "stack",
            models={**settings.models.model_dump(), "dir": settings.models_dir},
            stack={"broker_storage": "memory", "milvus": "lite"},
        )
        stack = LocalStack(stack_settings)
        stack.up()
        try:
            shared = [int(c["pid"]) for c in stack.state().values() if isinstance(c, dict) and c.get("pid")]
            runs = [_one_run(stack_settings, tree, total, w, cpus, shared) for w in workers]
        finally:
            stack.down()
    base = next((r["steady_images_per_s"] for r in runs if r["workers"] == 1), None)
    for r in runs:
        rate = r["steady_images_per_s"]
        r["speedup_vs_1"] = round(rate / base, 3) if base and rate else None
        r["efficiency"] = round(rate / base / r["workers"], 3) if base and rate else None
    return {
        "source": str(source),
        "images": total,
        "partitions": GALLERY_IMPORT_PARTITIONS,
        "model": settings.models.embedder,
        "intra_op_threads": settings.models.intra_op_threads,
        "cpus": cpus,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "runs": runs,
    }
