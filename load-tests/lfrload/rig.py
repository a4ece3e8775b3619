"""A private pipeline for a load run: its own local stack, a watchlist enrolled from real faces, a live
deployment, and every service as its own ``lfr`` process (the same commands production runs).

Why a private stack: a load run must neither disturb nor be disturbed by a running deployment, and its
topics start empty so every offset and counter it reads belongs to the run.
"""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

from lfr.core.config import Settings, load_settings
from lfr.demo.processes import ProcessGroup, ServiceProcess
from lfr.stack.local import LocalStack
from lfr.vision import FaceAnalyzer
from lfr.watchlist.compose import open_services
from lfr.watchlist.deployment_service import start_deployment_now
from lfr.watchlist.store import SubjectMeta, WatchlistStore

SAME_PERSON_COSINE = 0.5  # faces closer than this are taken for one person when enrolling from footage


def stack_settings(base: Settings, state: dict[str, Any], data_dir: Path) -> Settings:
    """Settings pointing at the stack ``state`` describes (as `lfr demo` derives them)."""
    return load_settings(
        **{
            **base.model_dump(exclude={"kafka", "redis", "milvus", "data_dir", "models"}),
            "data_dir": str(data_dir),
            "models": {**base.models.model_dump(), "dir": str(base.models_dir)},
            "kafka": {**base.kafka.model_dump(), "bootstrap_servers": state["kafka"]["url"]},
            "redis": {
                **base.redis.model_dump(),
                "url": state["redis"]["url"],
                "keystore_url": (state.get("keystore") or {}).get("url", ""),
            },
            "milvus": {**base.milvus.model_dump(), "uri": state["milvus"]["url"]},
        }
    )


def footage_faces(settings: Settings, video: Path, frames: int = 12) -> list[tuple[np.ndarray, np.ndarray]]:
    """(chip, embedding) of distinct people seen in ``frames`` frames spread over ``video``, largest first."""
    analyzer = FaceAnalyzer(settings)
    cap = cv2.VideoCapture(str(video))
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or 100
    found: list[tuple[float, np.ndarray, np.ndarray]] = []
    try:
        for i in range(frames):
            cap.set(cv2.CAP_PROP_POS_FRAMES, int(i * total / frames))
            ok, img = cap.read()
            if not ok:
                continue
            for f in analyzer.analyse(img):
                x0, y0, x1, y1 = f.bbox
                found.append(((x1 - x0) * (y1 - y0), f.chip, f.embedding))
    finally:
        cap.release()
    found.sort(key=lambda t: -t[0])
    people: list[tuple[np.ndarray, np.ndarray]] = []
    for _, chip, emb in found:
        e = emb / (np.linalg.norm(emb) or 1.0)
        if all(float(e @ (p / (np.linalg.norm(p) or 1.0))) < SAME_PERSON_COSINE for _, p in people):
            people.append((chip, emb))
    return people


def photo_faces(settings: Settings, roots: list[Path], want: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(chip, embedding) of one face per photo from the first folders that exist (tight LFW crops padded)."""
    from lfr.core.images import list_images, read_image

    analyzer = FaceAnalyzer(settings)
    out: list[tuple[np.ndarray, np.ndarray]] = []
    for root in roots:
        if not root.is_dir():
            continue
        for path in list_images(root)[: want * 2]:
            img = read_image(path)
            if img is None:
                continue
            out.extend((f.chip, f.embedding) for f in analyzer.analyse(img, pad_tight=True)[:1])
            if len(out) >= want:
                return out
    return out


@dataclass
class Rig:
    """The stack, the run's deployment and the service processes; ``close`` stops all of it."""

    base: Settings
    data_dir: Path | None = None
    settings: Settings | None = None
    stack: LocalStack | None = None
    deployment_id: str = ""
    watchlist_id: str = ""
    group: ProcessGroup | None = None
    embedders: list[ServiceProcess] = field(default_factory=list)
    alerting: ServiceProcess | None = None
    ingest: ServiceProcess | None = None
    _tmp: tempfile.TemporaryDirectory[str] | None = None
    _ingest_runs: int = 0

    def up(self) -> Settings:
        if self.data_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="lfr-load-")
            self.data_dir = Path(self._tmp.name)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        first = load_settings(
            **{
                **self.base.model_dump(exclude={"data_dir", "models"}),
                "data_dir": str(self.data_dir),
                "models": {**self.base.models.model_dump(), "dir": str(self.base.models_dir)},
            }
        )
        self.stack = LocalStack(first)
        self.stack.up()
        self.settings = stack_settings(self.base, self.stack.state(), self.data_dir)
        return self.settings

    def stack_pids(self) -> dict[str, int]:
        assert self.stack is not None
        out = {}
        for name, entry in self.stack.state().items():
            if isinstance(entry, dict) and "pid" in entry:
                out[name] = int(entry["pid"])
        return out

    async def enrol_and_start(
        self, faces: list[tuple[np.ndarray, np.ndarray]], enrol: int, filler: int, seed: int = 7
    ) -> None:
        """Enrol ``enrol`` real faces and ``filler`` random subjects; start a deployment searching them."""
        from lfr.vision import find_card

        s = self._s()
        self.watchlist_id = f"load-{uuid.uuid4().hex[:6]}"
        card = find_card(s.models_dir, s.models.embedder)
        store = WatchlistStore(s, card)
        rng = np.random.default_rng(seed)
        try:
            dim = int(faces[0][1].shape[0]) if faces else int(card.dim or 128)
            for i in range(enrol + filler):
                vec = faces[i][1] if i < min(enrol, len(faces)) else rng.normal(0.0, 1.0, dim)
                meta = SubjectMeta(subject_id=f"s{i}", watchlist_id=self.watchlist_id)
                await asyncio.to_thread(store.upsert_subject, meta, np.asarray(vec, np.float32), f"{i:064x}")
        finally:
            store.close()
        async with open_services(s) as svc:
            self.deployment_id = await start_deployment_now(
                svc.deployments, "load test", "load test", [self.watchlist_id], "loadgen", "Supt Load", 24
            )

    def _s(self) -> Settings:
        assert self.settings is not None, "up() first"
        return self.settings

    def _group(self) -> ProcessGroup:
        if self.group is None:
            s = self._s()
            env = {
                "LFR_DATA_DIR": str(s.data_dir),
                "LFR_KAFKA__BOOTSTRAP_SERVERS": s.kafka_bootstrap,
                "LFR_REDIS__URL": s.redis_url,
                "LFR_REDIS__KEYSTORE_URL": s.keystore_redis_url,
                "LFR_MILVUS__URI": s.milvus_uri,
                "LFR_MODELS__DIR": str(s.models_dir),
            }
            assert self.data_dir is not None
            self.group = ProcessGroup(self.data_dir / "logs", env)
        return self.group

    def ensure_consumers(self, embedders: int) -> None:
        """Run ``embedders`` embedder processes and one alerting process (stopping surplus embedders)."""
        group = self._group()
        while len(self.embedders) > embedders:
            self._stop(self.embedders.pop())
        while len(self.embedders) < embedders:
            self.embedders.append(group.start(f"embedder-{len(self.embedders) + 1}", "embed"))
        if self.alerting is None:
            self.alerting = group.start("alerting", "alert")

    def start_ingest(self, video: Path, cameras: int) -> None:
        """One ingest process reading ``cameras`` looping copies of ``video`` (each paced in real time)."""
        self.stop_ingest()
        assert self.data_dir is not None
        self._ingest_runs += 1
        path = self.data_dir / f"cameras-{self._ingest_runs}.yaml"
        path.write_text(
            yaml.safe_dump(
                [
                    {
                        "camera_id": f"load-cam-{self._ingest_runs}-{i}",
                        "deployment_id": self.deployment_id,
                        "url": str(video),
                        "loop": True,
                    }
                    for i in range(cameras)
                ]
            )
        )
        group = self._group()
        group.env["LFR_INGEST__CAMERAS_FILE"] = str(path)
        self.ingest = group.start("ingest", "ingest")

    def camera_ids(self, cameras: int) -> list[str]:
        return [f"load-cam-{self._ingest_runs}-{i}" for i in range(cameras)]

    def stop_ingest(self) -> None:
        if self.ingest is not None:
            self._stop(self.ingest)
            self.ingest = None

    def _stop(self, member: ServiceProcess) -> None:
        group = self._group()
        one = ProcessGroup(group.log_dir, group.env, [member])
        one.stop()
        group.members.remove(member)

    def service_pids(self) -> dict[str, int]:
        group = self.group
        if group is None:
            return {}
        return {m.name: m.proc.pid for m in group.members if m.proc.poll() is None}

    def failed(self) -> list[str]:
        return [f"{m.name} exited {m.proc.returncode}" for m in (self.group.failed() if self.group else [])]

    def close(self) -> None:
        if self.group is not None:
            self.group.stop()
        if self.stack is not None:
            self.stack.down()
        if self._tmp is not None:
            self._tmp.cleanup()
