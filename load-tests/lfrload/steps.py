"""Runs a load run's steps one after another on one rig, and sums each step up from the probes' samples.

A step is either ``cameras`` (N cameras through a real ingest process) or ``crops`` (crops injected at a
rate). Between steps the feed stops and the consumers drain, so a step's backlog never counts against the
next; the first ``warmup_s`` of each step (ingest starting, batches filling) are left out of its figures.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lfr.core import stats, topics
from lfrload.inject import Injected, inject
from lfrload.probes import Latency, Sampler
from lfrload.rig import Rig

P99_TARGET_MS = 1000.0


@dataclass(frozen=True)
class Step:
    kind: str  # "cameras" | "crops"
    cameras: int = 0
    rate: float = 0.0
    embedders: int = 1
    seconds: float = 60.0
    warmup_s: float = 15.0

    @property
    def label(self) -> str:
        what = f"{self.cameras} cam" if self.kind == "cameras" else f"{self.rate:g} crops/s"
        return f"{what}, {self.embedders} emb"


@dataclass
class Feed:
    video: Path | None = None
    chips: list[bytes] = field(default_factory=list)
    chip_size: int = 112
    site_cameras: int = 1000
    fps: float = 5.0
    source_fps: float = 25.0


def pct(values: list[int], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def _delta(rows: list[dict[str, Any]], key: str) -> float:
    vals = [r[key] for r in rows if key in r]
    return float(vals[-1] - vals[0]) if len(vals) >= 2 else 0.0


def _per_camera(win: list[dict[str, Any]], key: str, dur: float) -> dict[str, float]:
    """Per camera, the growth of a counter over the window, per second."""
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    for r in win:
        for cid, v in (r.get(key) or {}).items():
            first.setdefault(cid, v)
            last[cid] = v
    return {cid: (last[cid] - first[cid]) / dur for cid in last}


def by_crop_kind(lat: Latency, t0_ms: int, t1_ms: int) -> dict[str, Any]:
    """Crop, hit and alert latency split by why the crop was sent (probes: ``gated`` or ``fallback``).

    Why: the two have different latency by design (a fallback face waits for its track), so one p99 over
    both hides which part misses the target.
    """
    out: dict[str, Any] = {}
    for record in ("crop", "hit", "alert"):
        split = lat.window_by(record, t0_ms, t1_ms)
        for kind, values in split.items():
            if kind == "unknown":
                out[f"{record}_unattributed"] = len(values)
                continue
            out[f"{record}_{kind}_n"] = len(values)
            for q in (50, 90, 99):
                out[f"{record}_{kind}_p{q}_ms"] = pct(values, q)
            out[f"{record}_{kind}_max_ms"] = float(max(values)) if values else None
    return out


def summarise(
    step: Step,
    rows: list[dict[str, Any]],
    lat: Latency,
    t0: float,
    t1: float,
    fps: float,
    source_fps: float = 0.0,
) -> dict[str, Any]:
    """A step's figures from the rows sampled in [t0, t1] and the latencies recorded then."""
    win = [r for r in rows if t0 <= r["t"] <= t1]
    dur = (win[-1]["t"] - win[0]["t"]) if len(win) >= 2 else max(t1 - t0, 1e-9)
    alert = lat.window("alert", int(t0 * 1000), int(t1 * 1000))
    hits = lat.window("hit", int(t0 * 1000), int(t1 * 1000))
    crops = lat.window("crop", int(t0 * 1000), int(t1 * 1000))
    procs = sorted({k.split(":", 1)[1] for r in win for k in r if k.startswith("cpu:")})
    out: dict[str, Any] = {
        "step": step.label,
        "kind": step.kind,
        "cameras": step.cameras,
        "offered_crops_per_s": step.rate,
        "embedders": step.embedders,
        "seconds": round(dur, 1),
        "load1_mean": round(float(np.mean([r["load1"] for r in win])), 2) if win else None,
        "crops_per_s": round(_delta(win, f"end:{topics.CROPS}") / dur, 2),
        "faces_analysed_per_s": round(_delta(win, f"n:{stats.FACES_ANALYSED}") / dur, 2),
        "hits_per_s": round(_delta(win, f"end:{topics.HITS}") / dur, 2),
        "alert_records_per_s": round(
            (_delta(win, f"end:{topics.ALERTS}") + _delta(win, f"end:{topics.ALERT_UPDATES}")) / dur, 2
        ),
        "crops_expired": int(_delta(win, f"n:{stats.CROPS_EXPIRED}")),
        "alert_records": len(alert),
        "alert_p50_ms": pct(alert, 50),
        "alert_p95_ms": pct(alert, 95),
        "alert_p99_ms": pct(alert, 99),
        "hit_p50_ms": pct(hits, 50),
        "hit_p99_ms": pct(hits, 99),
        "crop_p50_ms": pct(crops, 50),
        "crop_p90_ms": pct(crops, 90),
        "crop_p95_ms": pct(crops, 95),
        "crop_p99_ms": pct(crops, 99),
        "embedder_lag_max": max((r.get("lag:embedder", 0) for r in win), default=0),
        "embedder_lag_end": win[-1].get("lag:embedder", 0) if win else 0,
        "alerting_lag_max": max((r.get("lag:alerting", 0) for r in win), default=0),
        "cpu_percent": {
            p: round(float(np.mean([r[f"cpu:{p}"] for r in win if f"cpu:{p}" in r])), 1) for p in procs
        },
        "rss_mb_max": {
            p: round(max(r[f"rss:{p}"] for r in win if f"rss:{p}" in r), 1)
            for p in procs
            if any(f"rss:{p}" in r for r in win)
        },
    }
    # Work per CPU second: on a shared machine a process gets only its share of the cores, so these hold
    # where the rates above depend on what else runs.
    cpu = out["cpu_percent"]
    emb_cores = sum(v for k, v in cpu.items() if k.startswith("embedder")) / 100
    all_cores = sum(cpu.values()) / 100
    out["embedder_cores"] = round(emb_cores, 2)
    out["pipeline_cores"] = round(all_cores, 2)
    out["faces_per_embedder_core_s"] = (
        round(out["faces_analysed_per_s"] / emb_cores, 1) if emb_cores > 0.01 else None
    )
    if step.kind == "cameras":
        out.update(by_crop_kind(lat, int(t0 * 1000), int(t1 * 1000)))
        analysed, decoded = _per_camera(win, "cam:analysed", dur), _per_camera(win, "cam:in", dur)
        # Frames the camera delivered sampled at ``fps``: a looping file reopened loses a little time.
        expected = {c: fps * decoded[c] / source_fps for c in decoded} if source_fps else {}
        out["camera_analysed_fps_min"] = round(min(analysed.values(), default=0.0), 2)
        out["camera_input_fps_min"] = round(min(decoded.values(), default=0.0), 2)
        out["camera_fps_ratio_min"] = round(
            min((analysed.get(c, 0.0) / e for c, e in expected.items() if e > 0), default=0.0), 3
        )
        out["cameras_reporting"] = len(analysed)
        out["frames_dropped"] = int(_delta(win, "cam:dropped"))
        ingest_cores = cpu.get("ingest", 0.0) / 100
        out["ingest_cores"] = round(ingest_cores, 2)
        out["cameras_per_ingest_core"] = (
            round(sum(analysed.values()) / fps / ingest_cores, 2) if ingest_cores > 0.01 else None
        )
        # A camera decoded slower than real time is falling behind too (a live stream would drop frames),
        # so the bar is the analysed rate itself, not the share of frames the decoder delivered.
        keeps_up = len(analysed) == step.cameras and out["camera_analysed_fps_min"] >= 0.9 * fps
    else:
        keeps_up = out["faces_analysed_per_s"] >= 0.95 * step.rate
    # A backlog still growing at the end means the step was not sustained, whatever the latency so far.
    backlog_ok = out["embedder_lag_end"] <= max(20.0, 2.0 * max(out["crops_per_s"], step.rate))
    p99 = out["alert_p99_ms"]
    out["sustained"] = bool(keeps_up and backlog_ok and (p99 is None or p99 < P99_TARGET_MS))
    return out


async def _drain(sampler: Sampler, limit_s: float) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit_s:
        await asyncio.sleep(sampler.interval_s)
        last = sampler.rows[-1] if sampler.rows else {}
        if last.get("lag:embedder", 1) == 0 and last.get("lag:alerting", 1) == 0:
            break
    return time.monotonic() - t0


async def _prime(rig: Rig, feed: Feed, sampler: Sampler, limit_s: float = 120.0) -> None:
    """Wait until the consumers answer: a few injected crops analysed means the group has joined."""
    assert rig.settings is not None
    before = sampler.rows[-1].get(f"n:{stats.FACES_ANALYSED}", 0) if sampler.rows else 0
    stop = asyncio.Event()
    await inject(
        rig.settings, rig.deployment_id, feed.chips[:8], feed.chip_size, 20.0, 0.5, 8, Injected(), stop
    )
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit_s:
        await asyncio.sleep(1.0)
        if sampler.rows and sampler.rows[-1].get(f"n:{stats.FACES_ANALYSED}", 0) >= before + 10:
            return
        if rig.failed():
            raise RuntimeError(f"a service stopped: {rig.failed()}")
    raise RuntimeError(f"the embedder analysed nothing within {limit_s:.0f} s")


async def _cameras_analysing(rig: Rig, sampler: Sampler, cameras: int, limit_s: float = 120.0) -> None:
    """Wait until every camera reports analysed frames: ingest's start-up (models) is not the step's."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit_s:
        await asyncio.sleep(0.5)
        last = sampler.rows[-1] if sampler.rows else {}
        analysed = last.get("cam:analysed") or {}
        if len(analysed) == cameras and all(v > 0 for v in analysed.values()):
            return
        if rig.failed():
            raise RuntimeError(f"a service stopped: {rig.failed()}")
    raise RuntimeError(f"not every camera analysed a frame within {limit_s:.0f} s")


async def run_steps(rig: Rig, feed: Feed, steps: list[Step], stop_on_fail: bool, log: Any) -> dict[str, Any]:
    """Every step in order on ``rig`` (already up, enrolled and started); returns results and raw samples."""
    assert rig.settings is not None
    lat = Latency()
    sampler = Sampler(rig.settings, rig.deployment_id)
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(sampler.run(stop)),
        asyncio.create_task(_follow(rig, lat, stop)),
    ]
    results: list[dict[str, Any]] = []
    marks: list[tuple[float, float, str]] = []
    try:
        for step in steps:
            rig.ensure_consumers(step.embedders)
            sampler.pids = {**rig.service_pids(), **{f"stack:{k}": v for k, v in rig.stack_pids().items()}}
            sampler.pids["loadgen"] = os.getpid()
            await _prime(rig, feed, sampler)
            await _drain(sampler, 30)
            feed_stop = asyncio.Event()
            injected = Injected()
            feeder: asyncio.Task[None] | None = None
            if step.kind == "cameras":
                assert feed.video is not None
                rig.start_ingest(feed.video, step.cameras)
                sampler.camera_ids = rig.camera_ids(step.cameras)
                sampler.pids = {**sampler.pids, **rig.service_pids()}
                await _cameras_analysing(rig, sampler, step.cameras)
            log(f"step {step.label}: load average {os.getloadavg()[0]:.2f}")
            t_start = time.time()
            if step.kind == "crops":
                feeder = asyncio.create_task(
                    inject(
                        rig.settings,
                        rig.deployment_id,
                        feed.chips,
                        feed.chip_size,
                        step.rate,
                        step.warmup_s + step.seconds,
                        feed.site_cameras,
                        injected,
                        feed_stop,
                    )
                )
            deadline = t_start + step.warmup_s + step.seconds
            while time.time() < deadline:
                await asyncio.sleep(1.0)
                if rig.failed():
                    raise RuntimeError(f"a service stopped: {rig.failed()}")
            t_end = time.time()
            feed_stop.set()
            if feeder is not None:
                await feeder
            rig.stop_ingest()
            sampler.camera_ids = []
            result = summarise(
                step, sampler.rows, lat, t_start + step.warmup_s, t_end, feed.fps, feed.source_fps
            )
            if step.kind == "crops":
                result["injector_behind_s"] = round(injected.behind_s, 2)
            result["drain_s"] = round(await _drain(sampler, 60), 1)
            results.append(result)
            marks.append((t_start, t_end, step.label))
            log(
                f"  {result['step']}: sustained={result['sustained']} alert p99={result['alert_p99_ms']} ms "
                f"faces/s={result['faces_analysed_per_s']} lag max={result['embedder_lag_max']} "
                f"load={result['load1_mean']}"
            )
            if stop_on_fail and not result["sustained"]:
                break
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    return {"results": results, "rows": sampler.rows, "latency": lat.samples, "marks": marks}


async def _follow(rig: Rig, lat: Latency, stop: asyncio.Event) -> None:
    from lfrload.probes import follow_latency

    assert rig.settings is not None
    await follow_latency(rig.settings, rig.deployment_id, lat, stop)
