"""What a load run measures while it runs.

Latency: every record on ``lfr.alerts.v1`` (a new alert) and ``lfr.alert-updates.v1`` (a later revision)
and every hit on ``lfr.hits.v1`` is read as it is written; its latency is the record's timestamp (set by
the producing service when it sends) minus the capture time the record carries: ``first_seen`` for a new
alert, ``last_seen`` (the newest capture folded in) for a revision, ``captured_at`` for a hit and for a crop
(the crop's share is ingest's: analysis, and best-shot selection holding a better face of a track for up to
``ingest.best_shot_min_interval_s`` or sending a track's face when it ends). All clocks are this machine's.
Crops of a camera step are told apart by why they were sent: ``gated`` (the face passed the quality gate:
best-shot selection) or ``fallback`` (a track's best face that failed it: ``ingest.search_unpassed_tracks``),
as the crop's ``send_reason`` says (``lfr.ingest.crops.passed_gate``, which recomputes the verdict from the
record's measures for an older producer's crop); a hit is its crop's kind, an alert record the kind of the
hit whose capture it reports.
Lag, throughput and per-process CPU and memory are sampled every few seconds: topic
end offsets and group committed offsets from the broker (read by consumers that never join a group),
the embedder's counters from Redis, each camera's status from Redis, and /proc through psutil.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from typing import Any

import psutil
from aiokafka import AIOKafkaConsumer, TopicPartition

from lfr.core import stats, topics
from lfr.core.bus import make_consumer
from lfr.core.config import QualitySettings, Settings
from lfr.core.redis_client import make_redis
from lfr.core.serde import SerdeError, decode
from lfr.core.timeutil import ms_from_ts
from lfr.ingest.crops import passed_gate
from lfr.ingest.status import read_status
from lfr.v1.alert_pb2 import Alert
from lfr.v1.crop_pb2 import FaceCrop
from lfr.v1.hit_pb2 import Hit
from lfr.vision.cards import find_card

WATCHED = (topics.CROPS, topics.HITS, topics.ALERTS, topics.ALERT_UPDATES)


CROP_KINDS = ("gated", "fallback")


@dataclass
class Latency:
    """(record time ms, latency ms) per kind: "alert" (new and revised alerts), "new_alert", "hit", "crop";
    and, to split them by why the crop was sent, the same with a reference per record in ``keyed``
    (crop id for crops and hits, subject and capture for alerts) and the maps that resolve it."""

    samples: dict[str, list[tuple[int, int]]] = field(
        default_factory=lambda: {"alert": [], "new_alert": [], "hit": [], "crop": []}
    )
    keyed: dict[str, list[tuple[int, int, str]]] = field(
        default_factory=lambda: {"alert": [], "hit": [], "crop": []}
    )
    crop_kind: dict[str, str] = field(default_factory=dict)  # crop id -> "gated" | "fallback"
    hit_crop: dict[str, str] = field(default_factory=dict)  # "subject|capture ms" -> crop id

    def window(self, kind: str, t0_ms: int, t1_ms: int) -> list[int]:
        return [lat for at, lat in self.samples[kind] if t0_ms <= at < t1_ms]

    def window_by(self, record: str, t0_ms: int, t1_ms: int) -> dict[str, list[int]]:
        """Latencies of ``record`` ("crop", "hit", "alert") in the window by crop kind; "unknown" holds
        the records whose crop was not seen (an alert about a hit outside the follower's reach)."""
        out: dict[str, list[int]] = {k: [] for k in (*CROP_KINDS, "unknown")}
        for at, lat, ref in self.keyed[record]:
            if not t0_ms <= at < t1_ms:
                continue
            crop_id = self.hit_crop.get(ref, "") if record == "alert" else ref
            out[self.crop_kind.get(crop_id, "unknown")].append(lat)
        return out


def gate_for(settings: Settings) -> QualitySettings:
    """The live quality gate as ingest resolves it for the configured detector."""
    card = find_card(settings.models_dir, settings.models.detector)
    return settings.quality.for_detector(card.confident_score)


async def _assign_all(consumer: AIOKafkaConsumer, names: tuple[str, ...]) -> None:
    await consumer._client.force_metadata_update()
    tps = [TopicPartition(n, p) for n in names for p in sorted(consumer.partitions_for_topic(n) or ())]
    consumer.assign(tps)
    await consumer.seek_to_end(*tps)


async def follow_latency(settings: Settings, deployment_id: str, out: Latency, stop: asyncio.Event) -> None:
    gate = gate_for(settings)
    consumer = make_consumer(settings, group_id=None, client_suffix="loadgen-latency")
    await consumer.start()
    try:
        await _assign_all(consumer, (topics.CROPS, topics.HITS, topics.ALERTS, topics.ALERT_UPDATES))
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=200, max_records=2000)
            for tp, records in batch.items():
                for r in records:
                    try:
                        if tp.topic == topics.CROPS:
                            crop = decode(FaceCrop, r.value)
                            if crop.deployment_id == deployment_id:
                                lat = r.timestamp - ms_from_ts(crop.captured_at)
                                out.samples["crop"].append((r.timestamp, lat))
                                out.keyed["crop"].append((r.timestamp, lat, crop.crop_id))
                                out.crop_kind[crop.crop_id] = (
                                    "gated" if passed_gate(crop, gate) else "fallback"
                                )
                            continue
                        if tp.topic == topics.HITS:
                            hit = decode(Hit, r.value)
                            if hit.deployment_id == deployment_id:
                                captured = ms_from_ts(hit.captured_at)
                                out.samples["hit"].append((r.timestamp, r.timestamp - captured))
                                out.keyed["hit"].append((r.timestamp, r.timestamp - captured, hit.crop_id))
                                out.hit_crop[f"{hit.subject_id}|{captured}"] = hit.crop_id
                            continue
                        alert = decode(Alert, r.value)
                    except SerdeError:
                        continue
                    if alert.deployment_id != deployment_id:
                        continue
                    if tp.topic == topics.ALERTS:
                        captured = ms_from_ts(alert.first_seen)
                        out.samples["new_alert"].append((r.timestamp, r.timestamp - captured))
                    else:
                        captured = ms_from_ts(alert.last_seen)
                    lat = r.timestamp - captured
                    out.samples["alert"].append((r.timestamp, lat))
                    out.keyed["alert"].append((r.timestamp, lat, f"{alert.subject.subject_id}|{captured}"))
    finally:
        await consumer.stop()


def _tree_times(proc: psutil.Process, children: bool) -> tuple[float, float]:
    """CPU seconds and RSS bytes of a process, with its children for the stack's parts (some run under
    wrappers); never for the load generator itself, whose children are the services."""
    cpu = rss = 0.0
    for p in [proc, *(proc.children(recursive=True) if children else [])]:
        try:
            t = p.cpu_times()
            cpu += t.user + t.system
            rss += p.memory_info().rss
        except psutil.Error:
            continue
    return cpu, rss


class Sampler:
    """One row every ``interval_s``: offsets, lag per group, counters, cameras, CPU % and RSS per process."""

    def __init__(self, settings: Settings, deployment_id: str, interval_s: float = 2.0) -> None:
        self.settings = settings
        self.deployment_id = deployment_id
        self.interval_s = interval_s
        self.rows: list[dict[str, Any]] = []
        self.pids: dict[str, int] = {}
        self.camera_ids: list[str] = []
        self._cpu_before: dict[str, tuple[float, float]] = {}
        self._groups = {
            "embedder": (settings.embedder.group_id, topics.CROPS),
            "alerting": (settings.alerting.group_id, topics.HITS),
        }

    async def run(self, stop: asyncio.Event) -> None:
        ends = make_consumer(self.settings, group_id=None, client_suffix="loadgen-ends")
        lags = {
            role: make_consumer(self.settings, group_id=group, client_suffix=f"loadgen-lag-{role}")
            for role, (group, _) in self._groups.items()
        }
        redis = make_redis(self.settings)
        for c in (ends, *lags.values()):
            await c.start()
        try:
            await ends._client.force_metadata_update()
            tps = [TopicPartition(n, p) for n in WATCHED for p in sorted(ends.partitions_for_topic(n) or ())]
            while not stop.is_set():
                t0 = time.monotonic()
                self.rows.append(await self._row(ends, lags, tps, redis))
                try:
                    await asyncio.wait_for(stop.wait(), max(0.05, self.interval_s - (time.monotonic() - t0)))
                except TimeoutError:
                    pass
        finally:
            for c in (ends, *lags.values()):
                await c.stop()
            await redis.aclose()

    async def _row(
        self,
        ends: AIOKafkaConsumer,
        lags: dict[str, AIOKafkaConsumer],
        tps: list[TopicPartition],
        redis: Any,
    ) -> dict[str, Any]:
        end = await ends.end_offsets(tps)
        row: dict[str, Any] = {"t": time.time(), "load1": os.getloadavg()[0]}
        for name in WATCHED:
            row[f"end:{name}"] = sum(int(v) for tp, v in end.items() if tp.topic == name)
        for role, (_, topic) in self._groups.items():
            mine = [tp for tp in tps if tp.topic == topic]
            committed = await asyncio.gather(*(lags[role].committed(tp) for tp in mine))
            row[f"lag:{role}"] = sum(
                max(0, int(end[tp]) - (int(c) if c is not None and c >= 0 else 0))
                for tp, c in zip(mine, committed, strict=True)
            )
        totals = await stats.totals(redis, self.settings, self.deployment_id)
        for k in (stats.FACES_ANALYSED, stats.HITS, stats.CROPS_DISCARDED, stats.CROPS_EXPIRED):
            row[f"n:{k}"] = totals.get(k, 0)
        if self.camera_ids:
            docs = [d for d in (await read_status(redis, self.settings, self.camera_ids)).values() if d]
            row["cam:reporting"] = len(docs)
            row["cam:analysed_fps_min"] = min((float(d.get("analysed_fps", 0)) for d in docs), default=0.0)
            row["cam:analysed_fps_mean"] = (
                sum(float(d.get("analysed_fps", 0)) for d in docs) / len(docs) if docs else 0.0
            )
            row["cam:dropped"] = sum(int(d.get("dropped_queue", 0)) for d in docs)
            row["cam:analysed"] = {str(d["camera_id"]): int(d.get("frames_analysed", 0)) for d in docs}
            row["cam:in"] = {str(d["camera_id"]): int(d.get("frames_in", 0)) for d in docs}
        now = time.monotonic()
        for name, pid in list(self.pids.items()):
            try:
                cpu, rss = _tree_times(psutil.Process(pid), name.startswith("stack:"))
            except psutil.Error:
                continue
            before = self._cpu_before.get(f"{name}:{pid}")
            self._cpu_before[f"{name}:{pid}"] = (now, cpu)
            if before is not None and now > before[0]:
                row[f"cpu:{name}"] = 100.0 * (cpu - before[1]) / (now - before[0])
            row[f"rss:{name}"] = rss / 2**20
        return row
