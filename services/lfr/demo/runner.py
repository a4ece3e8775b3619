"""`lfr demo`: the whole pipeline on one machine, on embedded defaults.

It starts the local stack (unless one is running), builds the models and the sample scene, replaces the
demo watchlist with the scene's (or ``--watchlist``'s) people (lfr.demo.watchlist), creates, authorises and
starts a deployment (audited like any other), runs ingest, embedder, alerting and api as separate `lfr`
processes connected only by Kafka, prints each alert as it arrives, and on Ctrl-C or after ``--duration``
stops everything it started and prints a summary.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import logging
import secrets
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from aiokafka import AIOKafkaConsumer, TopicPartition

from lfr.core import stats, topics
from lfr.core.bus import ensure_topics, make_consumer
from lfr.core.config import Settings, load_settings
from lfr.core.redis_client import make_redis
from lfr.core.serde import decode
from lfr.core.timeutil import iso, ms_from_ts
from lfr.demo.processes import ProcessGroup, tail
from lfr.stack.local import LocalStack, free_port
from lfr.v1.alert_pb2 import Alert
from lfr.watchlist.schemas import DeploymentOut

log = logging.getLogger(__name__)
DEMO_WATCHLIST = "demo-watchlist"
DEMO_OFFICER = "Demo Superintendent"


@dataclass
class DemoInputs:
    video: Path
    enrol_dir: Path
    description: str


@dataclass
class DemoSummary:
    deployment_id: str = ""
    alerts: dict[str, Alert] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    cameras: list[dict[str, object]] = field(default_factory=list)
    exit_codes: dict[str, int | None] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


def _print(msg: str) -> None:
    print(msg, flush=True)


_SOURCE = {
    "card": "the model card's threshold",
    "explicit": "set by a person",
    "size_rule": "set by the watchlist-size rule for governance.target_fpir",
}


def threshold_line(dep: DeploymentOut) -> str:
    """What the run alerts at and what that means, in one line (the basis of each figure is in the
    deployment record: ``lfr deployment get ID``)."""
    line = (
        f"threshold {dep.effective_threshold:g} ({_SOURCE.get(dep.threshold_source, dep.threshold_source)})"
    )
    rate = dep.expected_rate
    if rate is None or rate.false_alerts_per_1000 is None:
        return f"{line}; expected false alerts: unknown"
    line += f"; expected false alerts: {rate.false_alerts_per_1000:.3g} per 1,000 people passing"
    if rate.searches_per_person > 1:
        line += f" (each searched up to {rate.searches_per_person} times)"
    if rate.tpir is not None:
        line += f"; expected share of watchlist people found: {rate.tpir:.2f} from one face"
        if rate.tpir_person is not None:
            line += f", {rate.tpir_person:.2f} seen in {rate.tpir_person_views} views"
    return line


class DemoRunner:
    def __init__(
        self, settings: Settings, duration_s: float | None, video: Path | None, watchlist_dir: Path | None
    ) -> None:
        if (video is None) != (watchlist_dir is None):
            raise ValueError("--video and --watchlist go together: footage and the people to enrol from it")
        self.base_settings = settings
        self.duration_s = duration_s
        self.video = video
        self.watchlist_dir = watchlist_dir
        self._stop = asyncio.Event()

    # ---- set-up -----------------------------------------------------------------------------------------
    def _stack(self) -> tuple[LocalStack, bool, Settings]:
        stack = LocalStack(self.base_settings)
        already = stack.status()["healthy"]
        if not already:
            _print("starting the local stack (broker, Redis, Milvus Lite)...")
            stack.up()
        state = stack.state()
        settings = load_settings(
            **{
                **self.base_settings.model_dump(exclude={"kafka", "redis", "milvus"}),
                "kafka": {
                    **self.base_settings.kafka.model_dump(),
                    "bootstrap_servers": state["kafka"]["url"],
                },
                "redis": {
                    **self.base_settings.redis.model_dump(),
                    "url": state["redis"]["url"],
                    "keystore_url": (state.get("keystore") or {}).get("url", ""),
                },
                "milvus": {**self.base_settings.milvus.model_dump(), "uri": state["milvus"]["url"]},
            }
        )
        return stack, not already, settings

    def _inputs(self, settings: Settings) -> DemoInputs:
        if self.video is not None and self.watchlist_dir is not None:
            return DemoInputs(self.video, self.watchlist_dir, f"footage {self.video.name}")
        from lfr.ingest.demo_scene import build_demo_scene

        _print("building the sample scene from registry packages' face photos (cached)...")
        manifest = build_demo_scene(settings.data_dir / "demo-scene")
        return DemoInputs(Path(manifest.video), Path(manifest.enrol_dir), "the packaged sample scene")

    async def _prepare(self, settings: Settings, inputs: DemoInputs) -> str:
        """Enrol and authorise through the same service layer (and audit trail) as the API and CLI."""
        from lfr.demo.watchlist import replace_watchlist
        from lfr.watchlist.compose import open_services
        from lfr.watchlist.deployment_service import start_deployment_now

        actor = f"demo:{getpass.getuser()}"
        # A stack started by an older version lacks newer topics (the monitor's, for one).
        await ensure_topics(settings)
        async with open_services(settings) as svc:
            held = await replace_watchlist(svc.subjects, DEMO_WATCHLIST, inputs.enrol_dir, actor)
            _print(held.describe(DEMO_WATCHLIST))
            deployment_id = await start_deployment_now(
                svc.deployments,
                "LFR demo",
                "demonstration of the pipeline",
                [DEMO_WATCHLIST],
                actor,
                DEMO_OFFICER,
            )
            _print(threshold_line(await svc.deployments.get_deployment(deployment_id)))
            return deployment_id

    # ---- run --------------------------------------------------------------------------------------------
    def run(self) -> int:
        t0 = time.monotonic()
        stack, started_stack, settings = self._stack()
        summary = DemoSummary()
        group: ProcessGroup | None = None
        try:
            from lfr.modelbuild import build_models

            _print("building face models (cached)...")
            build_models(settings.models_dir)
            inputs = self._inputs(settings)
            summary.deployment_id = asyncio.run(self._prepare(settings, inputs))
            group = self._start_services(settings, inputs, summary.deployment_id)
            asyncio.run(self._watch(settings, summary, group))
        except KeyboardInterrupt:
            pass
        finally:
            if group is not None:
                _print("stopping services...")
                summary.exit_codes = group.stop()
            if summary.deployment_id:
                summary.counters = asyncio.run(self._counters(settings, summary.deployment_id))
                summary.cameras = asyncio.run(self._monitor_figures(settings))
            if started_stack:
                stack.down()
            summary.seconds = time.monotonic() - t0
        self._print_summary(summary)
        failed = {k: v for k, v in summary.exit_codes.items() if v not in (0, None, -signal.SIGTERM)}
        return 1 if failed else 0

    def _start_services(self, settings: Settings, inputs: DemoInputs, deployment_id: str) -> ProcessGroup:
        run_dir = settings.data_dir / "demo"
        run_dir.mkdir(parents=True, exist_ok=True)
        cameras = run_dir / "cameras.yaml"
        cameras.write_text(
            yaml.safe_dump(
                [
                    {
                        "camera_id": "demo-cam-1",
                        "deployment_id": deployment_id,
                        "url": str(inputs.video),
                        "loop": True,
                    },
                ]
            )
        )
        api_port = free_port()
        operator_key = secrets.token_urlsafe(18)
        api_keys = [
            {
                "name": "demo-operator",
                "key": operator_key,
                "roles": ["operator", "auditor", "watchlist-admin", "operations"],
            }
        ]
        env = {
            "LFR_DATA_DIR": str(settings.data_dir),
            "LFR_KAFKA__BOOTSTRAP_SERVERS": settings.kafka_bootstrap,
            "LFR_REDIS__URL": settings.redis_url,
            "LFR_REDIS__KEYSTORE_URL": settings.keystore_redis_url,
            "LFR_MILVUS__URI": settings.milvus_uri,
            "LFR_MODELS__DIR": str(settings.models_dir),
            "LFR_INGEST__CAMERAS_FILE": str(cameras),
            "LFR_API__PORT": str(api_port),
            "LFR_API__API_KEYS": json.dumps(api_keys),
        }
        group = ProcessGroup(run_dir / "logs", env)
        for name, args in (
            ("embedder", ["embed"]),
            ("alerting", ["alert"]),
            ("monitor", ["monitor"]),
            ("api", ["api"]),
            ("ingest", ["ingest"]),
        ):
            group.start(name, *args)
        _print(f"running {inputs.description} on deployment {deployment_id}")
        _print(f"operator console: http://127.0.0.1:{api_port}/console/  (token: {operator_key})")
        _print("operations view: `lfr status` in another terminal, or the console's operations page")
        _print("alerts as they arrive (Ctrl-C to stop):")
        return group

    async def _watch(self, settings: Settings, summary: DemoSummary, group: ProcessGroup) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, self._stop.set)
        loop.add_signal_handler(signal.SIGTERM, self._stop.set)
        deadline = None if self.duration_s is None else loop.time() + self.duration_s
        consumer: AIOKafkaConsumer = make_consumer(settings, group_id=None, client_suffix="demo-watch")
        await consumer.start()
        names = summary.names = await self._subject_names(settings)
        try:
            parts = consumer.partitions_for_topic(topics.ALERTS) or set()
            tps = [TopicPartition(topics.ALERTS, p) for p in sorted(parts)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            while not self._stop.is_set() and (deadline is None or loop.time() < deadline):
                dead = group.failed()
                if dead:
                    for m in dead:
                        _print(
                            f"{m.name} exited with {m.proc.returncode}; last log lines:\n{tail(m.log_path)}"
                        )
                    return
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    for r in records:
                        alert = decode(Alert, r.value)
                        if alert.deployment_id != summary.deployment_id:
                            continue
                        first = alert.alert_id not in summary.alerts
                        summary.alerts[alert.alert_id] = alert
                        who = names.get(alert.subject.subject_id, alert.subject.subject_id)
                        verb = "ALERT " if first else "update"
                        _print(
                            f"{verb} {iso(ms_from_ts(alert.last_seen))}  camera={','.join(alert.camera_ids)}"
                            f"  subject={who}  score={alert.best_score:.3f}  hits={alert.hit_count}"
                        )
        finally:
            await consumer.stop()

    async def _subject_names(self, settings: Settings) -> dict[str, str]:
        """Display names for the demo's own console output (never logged)."""
        from lfr.vision import find_card
        from lfr.watchlist.store import WatchlistStore

        store = WatchlistStore(settings, find_card(settings.models_dir, settings.models.embedder))
        try:
            records = await asyncio.to_thread(store.list_subjects, DEMO_WATCHLIST)
            return {r.subject_id: r.display_name or r.subject_id for r in records}
        finally:
            store.close()

    async def _monitor_figures(self, settings: Settings) -> list[dict[str, object]]:
        """Per camera, the monitor's per-minute figures summed (its windows over lfr.camera-stats.v1)."""
        from lfr.monitor import records

        redis = make_redis(settings)
        try:
            docs = await records.read_docs(redis, records.camera_key(settings, ""))
        finally:
            await redis.aclose()
        out: list[dict[str, object]] = []
        for doc in sorted(docs, key=lambda d: str(d.get("camera_id"))):
            minutes = doc.get("minutes") or []
            totals = {n: sum(int(m.get(n, 0)) for m in minutes) for n in ("frames", "faces", "crops")}
            out.append({"camera_id": doc.get("camera_id"), "minutes": len(minutes), **totals})
        return out

    async def _counters(self, settings: Settings, deployment_id: str) -> dict[str, int]:
        redis = make_redis(settings)
        try:
            return await stats.totals(redis, settings, deployment_id)
        finally:
            await redis.aclose()

    def _print_summary(self, s: DemoSummary) -> None:
        c = s.counters
        _print("\n=== LFR demo summary ===")
        _print(f"deployment        {s.deployment_id or '(not created)'}")
        _print(f"ran for           {s.seconds:.0f} s")
        _print(f"faces analysed    {c.get(stats.FACES_ANALYSED, 0)}")
        _print(f"non-matches       {c.get(stats.CROPS_DISCARDED, 0)} (deleted at once)")
        _print(f"hits              {c.get(stats.HITS, 0)}")
        _print(f"alerts            {len(s.alerts)} (pending an officer's decision)")
        subjects: dict[str, int] = {}
        for a in s.alerts.values():
            subjects[a.subject.subject_id] = subjects.get(a.subject.subject_id, 0) + a.hit_count
        for sid, hits in sorted(subjects.items()):
            _print(f"  {s.names.get(sid, sid)}: {hits} hit(s)")
        for cam in s.cameras:
            _print(
                f"monitor           {cam['camera_id']}: {cam['frames']} frames, {cam['faces']} faces, "
                f"{cam['crops']} crops in {cam['minutes']} one-minute window(s)"
            )
        for name, code in s.exit_codes.items():
            _print(f"{name:17s} exit {code}")


def run_demo(settings: Settings, duration_s: float | None, video: Path | None, watchlist: Path | None) -> int:
    return DemoRunner(settings, duration_s, video, watchlist).run()
