"""The pipeline the fault scenarios break: its own embedded stack, the services as processes, and the ledger.

Why its own stack rather than the session's: the scenarios kill the broker, Redis and Milvus, which every
other integration test shares. So this harness runs a ``LocalStack`` of its own in a temporary data dir, as
``lfr stack up`` runs it in production-like mode (Tansu on its S3 engine over SeaweedFS, the persistent
Redis with its append-only file, the memory-only key store), with Milvus Lite for speed; ``ingest`` (real
footage: the Hamilton clip, looping, on a deployment whose watchlist holds its performer), ``embed`` and
``alert`` run as separate ``lfr`` processes connected only by the broker, like ``lfr demo`` runs them.

Each scenario gets a deployment of its own and injects sealed crops of two enrolled people (a different
photo from the enrolment photo) and of two strangers, before, during and after its fault. A scenario is
complete when every matching crop has its hit, every expected alert is on ``lfr.alerts.v1`` at its final
hit count, and every crop has been decided; the ledger then answers the suite's questions: no alert lost,
each alert id raised once after de-duplication by id, no hit for a stranger, the audit chain verifying.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import httpx
import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from lfr.core import audit, stats, topics
from lfr.core.bus import client_kwargs, make_consumer, make_producer
from lfr.core.config import STACK_STATE_FILE, Settings, load_settings
from lfr.core.crypto import CropKeyring, crop_aad
from lfr.core.redis_client import make_redis
from lfr.core.serde import SerdeError, decode, encode
from lfr.core.timeutil import now_ms, ts_from_ms
from lfr.stack import seaweed
from lfr.stack.local import LocalStack, broker_argv
from lfr.v1.alert_pb2 import Alert
from lfr.v1.common_pb2 import BoundingBox, Point
from lfr.v1.crop_pb2 import FaceCrop
from lfr.v1.hit_pb2 import Hit

REPO = Path(__file__).resolve().parents[2]
KEY_TTL_S = 90  # crop keys: long enough for the longest outage here (Milvus, 30 s) plus the catch-up
KEY_ROTATION_S = 10
WINDOW_S = 3600  # one dedupe window per scenario: its crops share one capture time
SERVICES = {"ingest": "ingest", "embedder": "embed", "embedder-2": "embed", "alerting": "alert"}
PEOPLE = {"obama": ("obama", "obama.jpg", "obama2.jpg"), "biden": ("biden", "biden.jpg", "biden2.jpg")}
STRANGERS = {"rose": ("rose_leslie", "img1.jpg"), "kit": ("kit_harington", "john1.jpeg")}


@dataclass
class Probe:
    """One face chip, ready to be sealed into any number of crops."""

    jpeg: bytes
    bbox: tuple[float, float, float, float]
    landmarks: list[tuple[float, float]]
    score: float
    size: int
    subject_id: str | None  # None: a stranger, enrolled nowhere


@dataclass
class Scenario:
    """One fault's deployment and what was injected into it."""

    name: str
    deployment_id: str
    captured_ms: int
    crops: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))  # person -> crop ids
    strangers: dict[str, tuple[str, str]] = field(default_factory=dict)  # crop id -> (key id, camera)
    last_stranger_at: float = 0.0
    fault_ended: float | None = None  # monotonic time the fault ended (set by the fault, see ended())

    def ended(self) -> None:
        """The fault is over (process restarted, component answering, worker continued): recovery starts."""
        self.fault_ended = time.monotonic()

    def matching(self, subjects: dict[str, str]) -> dict[str, str]:
        """crop id -> the subject its hit must name."""
        return {c: subjects[p] for p, ids in self.crops.items() if p in subjects for c in ids}

    def total(self) -> int:
        return sum(len(ids) for ids in self.crops.values())


class Ledger:
    """Follows hits, alerts and alert updates from the beginning, by deployment (a background consumer)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.hits: dict[str, list[Hit]] = defaultdict(list)
        self.raised: dict[str, list[Alert]] = defaultdict(list)  # lfr.alerts.v1 only
        self.revisions: dict[str, list[Alert]] = defaultdict(list)  # both alert topics
        self._c: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._c = make_consumer(self.settings, group_id=None, client_suffix="faults-ledger")
        await self._c.start()
        wanted = (topics.HITS, topics.ALERTS, topics.ALERT_UPDATES)
        tps = [TopicPartition(t, p) for t in wanted for p in sorted(self._c.partitions_for_topic(t) or ())]
        self._c.assign(tps)
        await self._c.seek_to_beginning(*tps)
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        assert self._c is not None
        while True:
            batch = await self._c.getmany(timeout_ms=200, max_records=5000)
            for tp, recs in batch.items():
                for r in recs:
                    try:
                        if tp.topic == topics.HITS:
                            hit = decode(Hit, r.value)
                            self.hits[hit.deployment_id].append(hit)
                            continue
                        alert = decode(Alert, r.value)
                    except SerdeError:
                        continue
                    self.revisions[alert.deployment_id].append(alert)
                    if tp.topic == topics.ALERTS:
                        self.raised[alert.deployment_id].append(alert)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._c is not None:
            await self._c.stop()

    def final_hit_counts(self, deployment_id: str) -> dict[str, int]:
        out: dict[str, int] = {}
        for a in self.revisions[deployment_id]:
            out[a.alert_id] = max(out.get(a.alert_id, 0), a.hit_count)
        return out


@dataclass
class Outcome:
    """What a scenario measured; printed, and the figures docs/reliability.md quotes."""

    scenario: str
    injected: int
    matching: int
    alerts: int
    raised_records: int  # records on lfr.alerts.v1: more than `alerts` only if a crash repeated a produce
    recovery_s: float
    duration_s: float
    extra: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        extra = "".join(f", {k}={v}" for k, v in self.extra.items())
        return (
            f"[faults] {self.scenario}: {self.injected} crops ({self.matching} matching), {self.alerts} "
            f"alerts "
            f"({self.raised_records} records on lfr.alerts.v1), recovered {self.recovery_s:.1f} s after the "
            f"fault ended, scenario {self.duration_s:.0f} s{extra}"
        )


class Pipeline:
    """The stack, the three services, the enrolled people and the injection tools, for one test session."""

    def __init__(self, root: Path, models_dir: Path, faces: Path) -> None:
        self.root = root
        self.models_dir = models_dir
        self.faces = faces
        self.overrides: dict[str, Any] = {
            "data_dir": str(root / "data"),
            "models": {"dir": str(models_dir)},
            "kafka": {"crops_partitions": 4, "hits_partitions": 2, "alerts_partitions": 2},
            "crypto": {"key_ttl_s": KEY_TTL_S, "key_rotation_s": KEY_ROTATION_S},
            "alerting": {"dedupe_window_s": WINDOW_S},
            "ingest": {"analyse_fps": 2.0, "cameras_file": str(root / "cameras.yaml")},
            "stack": {"broker_storage": "s3", "milvus": "lite"},
        }
        self.stack = LocalStack(load_settings(**self.overrides))
        self.settings: Settings = self.stack.settings
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.logs = root / "logs"
        self.probes: dict[str, Probe] = {}
        self.subjects: dict[str, str] = {}  # person -> subject id
        self.camera_deployment = ""
        self.outcomes: list[Outcome] = []
        self.scenarios: list[Scenario] = []
        self.ledger: Ledger | None = None
        self.redis: Any = None
        self.producer: AIOKafkaProducer | None = None
        self.keyring: CropKeyring | None = None

    # ---- the stack ----------------------------------------------------------------------------------------
    def up(self) -> None:
        self.stack.up()
        state = self.stack.state()
        self.overrides["kafka"]["bootstrap_servers"] = state["kafka"]["url"]
        self.overrides["redis"] = {"url": state["redis"]["url"], "keystore_url": state["keystore"]["url"]}
        self.overrides["milvus"] = {"uri": state["milvus"]["url"]}
        self.settings = load_settings(**self.overrides)
        self.config = self.root / "lfr.yaml"
        self.config.write_text(yaml.safe_dump(self.overrides))

    def component(self, name: str) -> dict[str, Any]:
        entry: dict[str, Any] = self.stack.state()[name]
        return entry

    def kill_component(self, name: str, sig: int = signal.SIGKILL) -> None:
        pid = int(self.component(name)["pid"])
        os.killpg(pid, sig)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    return
            if not Path(f"/proc/{pid}").exists():
                return
            time.sleep(0.05)
        raise AssertionError(f"{name} (pid {pid}) did not exit after signal {sig}")

    def restart_component(self, name: str, timeout_s: float = 60.0) -> float:
        """Start ``name`` again on its port and data (as after a crash); returns seconds until it answers."""
        t0 = time.monotonic()
        entry = self.component(name)
        port = int(entry["port"])
        st = self.stack
        if name == "kafka":
            s3 = self.component("s3")
            comp = st._spawn(
                "kafka",
                broker_argv(port, entry["storage"]),
                port,
                entry["url"],
                env=seaweed.broker_env(st.data_dir, int(s3["port"])),
                kind="tansu",
                storage=entry["storage"],
            )
        elif name == "redis":
            comp = st._start_redis("redis", persistent=True, port=port)
        elif name == "milvus":
            argv = [sys.executable, "-m", "milvus_lite", "server", "--data-dir", str(st.data_dir / "milvus")]
            argv += ["--host", "127.0.0.1", "--port", str(port)]
            comp = st._spawn("milvus", argv, port, entry["url"], kind="lite")
        else:
            raise ValueError(f"no restart for {name}")
        path = st.data_dir / STACK_STATE_FILE
        doc = json.loads(path.read_text())
        doc[name] = comp.as_dict()
        path.write_text(json.dumps(doc, indent=2))  # so that `down` stops the new process
        while not st._answers(name, comp.as_dict()):
            assert time.monotonic() - t0 < timeout_s, f"{name} did not answer {timeout_s:.0f} s after restart"
            time.sleep(0.1)
        return time.monotonic() - t0

    # ---- the services -------------------------------------------------------------------------------------
    def start_service(self, name: str) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LFR_")}
        env["LFR_CONFIG"] = str(self.config)
        self.logs.mkdir(parents=True, exist_ok=True)
        with open(self.logs / f"{name}.log", "ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "lfr.cli", SERVICES[name]],
                cwd=REPO,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.procs[name] = proc
        return proc

    def signal_service(self, name: str, sig: int) -> None:
        os.killpg(self.procs[name].pid, sig)
        if sig == signal.SIGKILL:
            self.procs[name].wait(timeout=20)

    def stop_service(self, name: str) -> int | None:
        """SIGTERM (a clean leave of its group), and forget the process."""
        proc = self.procs.pop(name)
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            return proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            return proc.wait(timeout=10)

    async def assigned(self, name: str) -> int:
        """Partitions the service's stage holds now, from its /metrics (0 while it cannot say)."""
        runfile = next((self.settings.data_dir / "run").glob(f"*-{self.procs[name].pid}.json"), None)
        if runfile is None:
            return 0
        try:
            url = json.loads(runfile.read_text())["health_url"]
            async with httpx.AsyncClient(timeout=3) as client:
                text = (await client.get(f"{url}/metrics")).text
        except (OSError, ValueError, KeyError, httpx.HTTPError):
            return 0
        for line in text.splitlines():
            if line.startswith("lfr_stage_assigned_partitions{"):
                return int(float(line.rsplit(" ", 1)[1]))
        return 0

    async def wait_assigned(self, names: tuple[str, ...], partitions: int, timeout_s: float = 90.0) -> float:
        """Until the ``partitions`` are shared out among all of ``names``, the same on two looks 1 s apart
        (a group of several members has settled; during a rebalance two members can both claim some)."""
        t0 = time.monotonic()
        settled = 0
        while settled < 2:
            held = [await self.assigned(n) for n in names]
            settled = settled + 1 if sum(held) == partitions and min(held) > 0 else 0
            assert time.monotonic() - t0 < timeout_s, f"{names} hold {held} of {partitions} partitions"
            self.assert_services_alive()
            await asyncio.sleep(1.0)
        return time.monotonic() - t0

    def assert_services_alive(self) -> None:
        dead = {n: p.returncode for n, p in self.procs.items() if p.poll() is not None}
        assert not dead, f"services exited: {dead}\n" + "\n".join(
            f"--- {n}:\n{self.log_tail(n)}" for n in dead
        )

    def log_tail(self, name: str, chars: int = 3000) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def stop_services(self) -> dict[str, int | None]:
        for p in self.procs.values():
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGCONT)
                    os.killpg(p.pid, signal.SIGTERM)
        codes: dict[str, int | None] = {}
        for name, p in self.procs.items():
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=10)
            codes[name] = p.returncode
        return codes

    # ---- people, deployments, the footage -----------------------------------------------------------------
    async def enrol(self) -> None:
        """The two people of the injected crops, the clip's performer, and their deployments' cameras."""
        from lfr.vision import FaceAnalyzer
        from lfr.watchlist.compose import open_services

        train = self.faces / "face_recognition_demo" / "knn_examples" / "train"
        enrol_dir = self.root / "enrol"
        for person, (folder, enrol_name, _) in PEOPLE.items():
            (enrol_dir / person).mkdir(parents=True, exist_ok=True)
            shutil.copy(train / folder / enrol_name, enrol_dir / person / enrol_name)
        async with open_services(self.settings) as services:
            svc = services.subjects
            got = await svc.import_subjects(enrol_dir, "wl-faults", "faults-harness", progress=False)
            assert got.accepted == len(PEOPLE), got.as_dict()
            self.subjects = {s.display_name: s.subject_id for s in await svc.list_subjects("wl-faults")}
            got = await svc.import_subjects(
                self.faces / "face_recognition_demo" / "enroll", "wl-stage", "faults-harness", progress=False
            )
            assert got.accepted == 2, got.as_dict()
        analyzer = await asyncio.to_thread(FaceAnalyzer, self.settings)
        sources = {p: (train / f / probe, self.subjects[p]) for p, (f, _, probe) in PEOPLE.items()}
        sources |= {p: (train / f / name, None) for p, (f, name) in STRANGERS.items()}
        for person, (path, subject) in sources.items():
            img = cv2.imread(str(path), cv2.IMREAD_COLOR)
            assert img is not None, path
            face = await asyncio.to_thread(analyzer.enrol, img)
            jpeg = cv2.imencode(".jpg", face.chip, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
            x, y, w, h = face.detection.bbox
            marks = [(float(px), float(py)) for px, py in face.detection.landmarks]
            self.probes[person] = Probe(
                jpeg, (x, y, w, h), marks, face.detection.score, face.chip.shape[0], subject
            )
        self.camera_deployment = await self.deployment("real footage", ["wl-stage"])
        clip = self.faces / "face_recognition_demo" / "video" / "short_hamilton_clip.mp4"
        camera = {"camera_id": "faults-cam", "deployment_id": self.camera_deployment, "url": str(clip)}
        cameras = Path(self.overrides["ingest"]["cameras_file"])
        await asyncio.to_thread(cameras.write_text, yaml.safe_dump([{**camera, "loop": True}]))

    async def deployment(self, name: str, watchlists: list[str]) -> str:
        from lfr.watchlist.compose import open_services
        from lfr.watchlist.deployment_service import start_deployment_now

        async with open_services(self.settings) as svc:
            return await start_deployment_now(
                svc.deployments, f"faults: {name}", "fault suite", watchlists, "faults-harness", "Supt Faults"
            )

    async def open_clients(self) -> None:
        self.redis = make_redis(self.settings)
        self.keyring = CropKeyring(self.settings)
        self.producer = make_producer(self.settings, "faults-inject")
        await self.producer.start()
        self.ledger = Ledger(self.settings)
        await self.ledger.start()

    async def close_clients(self) -> None:
        if self.ledger is not None:
            await self.ledger.stop()
        if self.producer is not None:
            await self.producer.stop()
        if self.keyring is not None:
            await self.keyring.aclose()
        if self.redis is not None:
            await self.redis.aclose()

    async def warm_up(self, timeout_s: float = 180.0) -> None:
        """Until every service works: a crop goes all the way to its alert, and the footage yields crops.

        Without this the first scenario's fault could land on a service still loading its model.
        """
        t0 = time.monotonic()
        sc = Scenario("warm-up", await self.deployment("warm-up", ["wl-faults"]), now_ms())
        await self.inject(sc, 1, people=("obama",))
        await self.wait_complete(sc, timeout_s)
        while await self.decided(self.camera_deployment) < 1:
            assert time.monotonic() - t0 < timeout_s, (
                "ingest published no crop of the footage\n" + self.log_tail("ingest")
            )
            self.assert_services_alive()
            await asyncio.sleep(0.5)
        print(f"[faults] pipeline warm {time.monotonic() - t0:.1f} s after the services started", flush=True)

    async def first_output(self, sc: Scenario, service: str, timeout_s: float = 60.0) -> None:
        """Until ``service`` has produced something for this scenario, so that a kill lands mid-stream."""
        assert self.ledger is not None
        t0 = time.monotonic()
        seen = self.ledger.raised if service == "alerting" else self.ledger.hits
        while not seen[sc.deployment_id]:
            assert time.monotonic() - t0 < timeout_s, f"{service} produced nothing for {sc.name}"
            await asyncio.sleep(0.05)

    # ---- scenarios ----------------------------------------------------------------------------------------
    async def scenario(self, name: str) -> Scenario:
        sc = Scenario(name, await self.deployment(name, ["wl-faults"]), now_ms())
        self.scenarios.append(sc)
        return sc

    async def inject(self, sc: Scenario, each: int, people: tuple[str, ...] | None = None) -> None:
        """``each`` sealed crops per person (every enrolled person and stranger unless ``people`` says)."""
        assert self.producer is not None and self.keyring is not None
        futures = []
        for person in people or tuple(self.probes):
            probe = self.probes[person]
            for _ in range(each):
                crop_id = f"{sc.name}-{person}-{uuid.uuid4().hex[:12]}"
                camera = f"cam-{sc.total() % 8}"  # 8 keys: every crop partition gets crops
                chip = await self.keyring.encrypt(probe.jpeg, crop_aad(crop_id, camera, sc.deployment_id))
                x, y, w, h = probe.bbox
                crop = FaceCrop(
                    crop_id=crop_id,
                    deployment_id=sc.deployment_id,
                    camera_id=camera,
                    track_id=f"t-{crop_id}",  # one crop per track: no fusion across injected crops
                    captured_at=ts_from_ms(sc.captured_ms),
                    bbox=BoundingBox(x=x, y=y, width=w, height=h),
                    landmarks=[Point(x=px, y=py) for px, py in probe.landmarks],
                    detector_score=probe.score,
                    chip=chip,
                    chip_size=probe.size,
                )
                sc.crops[person].append(crop_id)
                if probe.subject_id is None:
                    sc.strangers[crop_id] = (chip.key_id, camera)
                    sc.last_stranger_at = time.monotonic()
                futures.append(await self.producer.send(topics.CROPS, encode(crop), key=camera.encode()))
        await asyncio.gather(*futures)

    async def inject_during(self, sc: Scenario, seconds: float, every_s: float = 1.0) -> None:
        """A crop of each person every ``every_s`` for ``seconds``: crops arriving while the fault lasts."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            await self.inject(sc, 1)
            await asyncio.sleep(every_s)

    def _complete(self, sc: Scenario, decided: int) -> bool:
        assert self.ledger is not None
        want = sc.matching(self.subjects)
        hit_crops = {h.crop_id for h in self.ledger.hits[sc.deployment_id]}
        if not set(want) <= hit_crops or decided < sc.total():
            return False
        raised = {a.alert_id for a in self.ledger.raised[sc.deployment_id]}
        finals = self.ledger.final_hit_counts(sc.deployment_id)
        per_subject: dict[str, int] = defaultdict(int)
        for subject in want.values():
            per_subject[subject] += 1
        by_subject = {a.subject.subject_id: a.alert_id for a in self.ledger.revisions[sc.deployment_id]}
        return all(
            s in by_subject and by_subject[s] in raised and finals[by_subject[s]] >= n
            for s, n in per_subject.items()
        )

    async def committed(self, group_id: str, topic: str) -> dict[int, int]:
        """The group's committed offset per partition of ``topic`` (what a restarted member resumes from).

        Read by a consumer of the group that never joins it (manual assignment, no commits): Tansu answers
        the consumer's offset fetch, not the admin client's.
        """
        consumer = AIOKafkaConsumer(
            **client_kwargs(self.settings, "faults-offsets"), group_id=group_id, enable_auto_commit=False
        )
        await consumer.start()
        try:
            tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
            consumer.assign(tps)
            return {tp.partition: await consumer.committed(tp) or 0 for tp in tps}
        finally:
            await consumer.stop()

    async def decided(self, deployment_id: str) -> int:
        counts = await stats.totals(self.redis, self.settings, deployment_id)
        return sum(counts.get(k, 0) for k in (stats.FACES_ANALYSED, stats.CROPS_EXPIRED, stats.CROPS_REFUSED))

    async def wait_complete(self, sc: Scenario, timeout_s: float) -> float:
        """Seconds until the scenario is complete (see the module docstring); fails after ``timeout_s``."""
        t0 = time.monotonic()
        decided = 0
        while True:
            with contextlib.suppress(Exception):  # Redis may still be coming back
                decided = await self.decided(sc.deployment_id)
            if self._complete(sc, decided):
                return time.monotonic() - t0
            if time.monotonic() - t0 > timeout_s:
                assert self.ledger is not None
                raise AssertionError(
                    f"{sc.name} incomplete after {timeout_s:.0f} s: {decided}/{sc.total()} crops decided, "
                    f"{len({h.crop_id for h in self.ledger.hits[sc.deployment_id]})}/"
                    f"{len(sc.matching(self.subjects))} matching crops hit, alerts "
                    f"{self.ledger.final_hit_counts(sc.deployment_id)}\n"
                    + "\n".join(f"--- {n}:\n{self.log_tail(n)}" for n in self.procs)
                )
            self.assert_services_alive()
            await asyncio.sleep(0.25)

    async def check(self, sc: Scenario, fault_ended: float, bound_s: float, started: float) -> Outcome:
        """The suite's assertions for one scenario, after it completed."""
        assert self.ledger is not None
        recovery = time.monotonic() - fault_ended
        await asyncio.sleep(2.0)  # a duplicate raised late would arrive now
        want = sc.matching(self.subjects)
        hits = self.ledger.hits[sc.deployment_id]
        assert not {h.crop_id for h in hits} - set(want), "a stranger's crop raised a hit"
        assert all(h.subject_id == want[h.crop_id] for h in hits), "a hit named the wrong person"
        expected = {s for s in want.values()}
        raised = self.ledger.raised[sc.deployment_id]
        by_id = {a.alert_id: a.subject.subject_id for a in raised}
        assert sorted(by_id.values()) == sorted(expected), f"one alert per person expected: {by_id}"
        for aid, n in self.ledger.final_hit_counts(sc.deployment_id).items():
            assert n == sum(1 for s in want.values() if s == by_id[aid]), "an alert's hit count is off"
        report = await audit.verify(self.settings, self.redis)
        assert report.ok, report.as_dict()
        assert recovery <= bound_s, f"{sc.name}: recovered {recovery:.1f} s after the fault, bound {bound_s}"
        self.assert_services_alive()
        outcome = Outcome(
            sc.name, sc.total(), len(want), len(by_id), len(raised), recovery, time.monotonic() - started
        )
        self.outcomes.append(outcome)
        return outcome

    async def run(
        self,
        name: str,
        fault: Callable[[Scenario], Awaitable[dict[str, Any] | None]],
        bound_s: float,
        before: int = 3,
        after: int = 2,
        timeout_s: float = 180.0,
    ) -> Outcome:
        """The common shape: crops before, the fault (which may inject during it), crops after, checks.

        The fault coroutine calls ``sc.ended()`` when the fault ends (process restarted, component back,
        worker continued; else its return counts); recovery is measured from then until the scenario is
        complete.
        """
        started = time.monotonic()
        sc = await self.scenario(name)
        await self.inject(sc, before)
        extra = await fault(sc) or {}
        fault_ended = sc.fault_ended or time.monotonic()
        await self.inject(sc, after)
        await self.wait_complete(sc, timeout_s)
        outcome = await self.check(sc, fault_ended, bound_s, started)
        outcome.extra.update(extra)
        print(outcome.line(), flush=True)
        return outcome


@contextlib.asynccontextmanager
async def running_pipeline(models_dir: Path, faces: Path) -> AsyncIterator[Pipeline]:
    root = Path(tempfile.mkdtemp(prefix="lfr-faults-"))
    pipe = Pipeline(root, models_dir, faces)
    try:
        await asyncio.to_thread(pipe.up)
        await pipe.enrol()
        await pipe.open_clients()
        for name in ("alerting", "embedder", "ingest"):
            pipe.start_service(name)
        await pipe.warm_up()
        yield pipe
    finally:
        codes = pipe.stop_services()
        await pipe.close_clients()
        await asyncio.to_thread(pipe.stack.down)
        for o in pipe.outcomes:
            print(o.line(), flush=True)
        print(f"[faults] service exit codes at the end: {codes}", flush=True)
        if os.environ.get("LFR_FAULTS_KEEP"):
            print(f"[faults] kept {root}", flush=True)
        else:
            shutil.rmtree(root, ignore_errors=True)
