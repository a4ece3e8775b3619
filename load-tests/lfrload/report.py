"""The run's Markdown report, its PNG plots and a JSON file of every figure and sample."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import itertools

import matplotlib.pyplot as plt
import numpy as np

from lfr.core import stats, topics


def _machine() -> str:
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{platform.machine()}, {os.cpu_count()} CPUs, {mem_gib:.0f} GiB, {platform.platform()}"


def _rate(rows: list[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    ts, vs = [], []
    for a, b in itertools.pairwise(rows):
        if key in a and key in b and b["t"] > a["t"]:
            ts.append(b["t"])
            vs.append((b[key] - a[key]) / (b["t"] - a["t"]))
    return ts, vs


def _shade(ax: Any, marks: list[tuple[float, float, str]], t0: float) -> None:
    for i, (a, b, _) in enumerate(marks):
        ax.axvspan(a - t0, b - t0, color="0.9" if i % 2 else "0.82", zorder=0)


def plots(run: dict[str, Any], out: Path, prefix: str) -> list[tuple[str, str]]:
    rows, marks = run["rows"], run["marks"]
    if not rows:
        return []
    t0 = rows[0]["t"]
    made: list[tuple[str, str]] = []

    def save(fig: Any, name: str, title: str) -> None:
        fig.tight_layout()
        fig.savefig(out / f"{prefix}{name}.png", dpi=90)
        plt.close(fig)
        made.append((title, f"{prefix}{name}.png"))

    fig, ax = plt.subplots(figsize=(8, 3.6))
    _shade(ax, marks, t0)
    for key, label in (
        (f"end:{topics.CROPS}", "crops produced"),
        (f"n:{stats.FACES_ANALYSED}", "faces analysed"),
        (f"end:{topics.HITS}", "hits"),
    ):
        ts, vs = _rate(rows, key)
        ax.plot([t - t0 for t in ts], vs, label=label)
    ax.set_xlabel("s since start (shaded: steps)")
    ax.set_ylabel("per second")
    ax.legend(loc="upper left", fontsize=8)
    save(fig, "throughput", "Throughput of each stage")

    fig, ax = plt.subplots(figsize=(8, 3.6))
    _shade(ax, marks, t0)
    for role in ("embedder", "alerting"):
        ax.plot([r["t"] - t0 for r in rows], [r.get(f"lag:{role}", 0) for r in rows], label=f"{role} lag")
    ax.set_xlabel("s since start (shaded: steps)")
    ax.set_ylabel("records behind")
    ax.legend(loc="upper left", fontsize=8)
    save(fig, "lag", "Consumer lag over time")

    fig, ax = plt.subplots(figsize=(8, 3.6))
    lat = run["latency"]["alert"]
    for a, b, label in marks:
        vals = sorted(v for at, v in lat if a * 1000 <= at < b * 1000)
        if vals:
            ax.plot(vals, np.arange(1, len(vals) + 1) / len(vals), label=label)
    ax.axvline(1000, color="r", lw=0.8, ls="--")
    ax.set_xlabel("capture to alert record, ms")
    ax.set_ylabel("fraction of alert records")
    ax.legend(loc="lower right", fontsize=7)
    save(fig, "latency_cdf", "Capture-to-alert latency per step (CDF; red: 1 s)")

    procs = sorted({k.split(":", 1)[1] for r in rows for k in r if k.startswith("cpu:")})
    for kind, unit, name, title in (
        ("cpu", "% of one core", "cpu", "CPU per process"),
        ("rss", "MiB", "rss", "Memory (RSS) per process"),
    ):
        fig, ax = plt.subplots(figsize=(8, 4))
        _shade(ax, marks, t0)
        for p in procs:
            pts = [(r["t"] - t0, r[f"{kind}:{p}"]) for r in rows if f"{kind}:{p}" in r]
            if pts:
                ax.plot(*zip(*pts, strict=True), label=p)
        ax.set_xlabel("s since start (shaded: steps)")
        ax.set_ylabel(unit)
        ax.legend(loc="upper left", fontsize=7, ncol=3)
        save(fig, name, title)
    return made


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.1f}" if abs(v) >= 10 else f"{v:.2f}"
    return str(v)


def write_report(run: dict[str, Any], out: Path, command: str, notes: list[str], prefix: str = "") -> Path:
    out.mkdir(parents=True, exist_ok=True)
    images = plots(run, out, prefix)
    results = run["results"]
    loads = [r["load1"] for r in run["rows"]]
    lines = [
        "# LFR load run",
        "",
        f"- command: `{command}`",
        f"- machine: {_machine()}",
        f"- load average (1 min) during the run: min {min(loads, default=0):.2f}, "
        f"median {float(np.median(loads)) if loads else 0:.2f}, max {max(loads, default=0):.2f}",
        *[f"- {n}" for n in notes],
        "",
        "Latency is the alert record's timestamp minus the newest capture it folds in (first capture for a "
        "new alert); crops and hits: the record's timestamp minus the crop's capture time. Figures leave out "
        "each step's warm-up.",
        "",
        "| step | s | load | crops/s | faces/s | hits/s | alert rec/s | alert p50 / p95 / p99 ms | "
        "crop p50 / p99 ms | hit p50 / p99 ms | emb lag max / end | cam fps min (of due) | sustained |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['step']} | {_fmt(r['seconds'])} | {_fmt(r['load1_mean'])} | {_fmt(r['crops_per_s'])} | "
            f"{_fmt(r['faces_analysed_per_s'])} | {_fmt(r['hits_per_s'])} | "
            f"{_fmt(r['alert_records_per_s'])} | "
            f"{_fmt(r['alert_p50_ms'])} / {_fmt(r['alert_p95_ms'])} / {_fmt(r['alert_p99_ms'])} | "
            f"{_fmt(r['crop_p50_ms'])} / {_fmt(r['crop_p99_ms'])} | "
            f"{_fmt(r['hit_p50_ms'])} / {_fmt(r['hit_p99_ms'])} | "
            f"{r['embedder_lag_max']} / {r['embedder_lag_end']} | "
            f"{_fmt(r.get('camera_analysed_fps_min'))} ({_fmt(r.get('camera_fps_ratio_min'))}) | "
            f"{'yes' if r['sustained'] else 'no'} |"
        )
    cams = [r for r in results if "crop_gated_n" in r]
    if cams:
        lines += [
            "",
            "Camera steps by why the crop was sent: `gated` (its face passed the quality gate) or "
            "`fallback` (a track's best face that failed it), recomputed from each crop's recorded measures; "
            "a hit is its crop's kind, an alert record the kind of the hit whose capture it reports. "
            "Latency ms, p50 / p90 / p99 / max (records):",
            "",
            "| step | kind | capture to crop | capture to hit | capture to alert |",
            "|---|---|---|---|---|",
        ]
        for r in cams:
            for kind in ("gated", "fallback"):
                cells = [
                    f"{_fmt(r[f'{rec}_{kind}_p50_ms'])} / {_fmt(r[f'{rec}_{kind}_p90_ms'])} / "
                    f"{_fmt(r[f'{rec}_{kind}_p99_ms'])} / {_fmt(r[f'{rec}_{kind}_max_ms'])} "
                    f"({r[f'{rec}_{kind}_n']})"
                    for rec in ("crop", "hit", "alert")
                ]
                lines.append(f"| {r['step']} | {kind} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Work per CPU second (what a step got of the shared cores: faces per embedder core-second, cameras "
        "at the analysed rate per ingest core, cores used by every process of the run):",
        "",
        "| step | embedder cores | faces per embedder core-s | ingest cores | cameras per ingest core | "
        "all processes, cores |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['step']} | {_fmt(r['embedder_cores'])} | {_fmt(r['faces_per_embedder_core_s'])} | "
            f"{_fmt(r.get('ingest_cores'))} | {_fmt(r.get('cameras_per_ingest_core'))} | "
            f"{_fmt(r['pipeline_cores'])} |"
        )
    lines += ["", "CPU (% of one core, mean) and memory (RSS MiB, max) per process:", ""]
    procs = sorted({p for r in results for p in r["cpu_percent"]})
    lines.append("| step | " + " | ".join(procs) + " |")
    lines.append("|---|" + "---|" * len(procs))
    for r in results:
        cells = [f"{_fmt(r['cpu_percent'].get(p))} / {_fmt(r['rss_mb_max'].get(p))}" for p in procs]
        lines.append(f"| {r['step']} | " + " | ".join(cells) + " |")
    for title, name in images:
        lines += ["", f"## {title}", "", f"![{title}]({name})"]
    path = out / f"{prefix}report.md"
    path.write_text("\n".join(lines) + "\n")
    (out / f"{prefix}results.json").write_text(
        json.dumps({"command": command, "notes": notes, **run}, default=str)
    )
    return path
