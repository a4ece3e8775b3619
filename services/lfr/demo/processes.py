"""Starting and stopping the service processes the demo runs, each as a real `lfr <service>` process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class ServiceProcess:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path


@dataclass
class ProcessGroup:
    """The demo's services; stopped together with SIGTERM (clean flush and commit), then SIGKILL."""

    log_dir: Path
    env: dict[str, str]
    members: list[ServiceProcess] = field(default_factory=list)

    def start(self, name: str, *args: str) -> ServiceProcess:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{name}.log"
        with open(log_path, "ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "lfr.cli", *args],
                env={**os.environ, **self.env},
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        member = ServiceProcess(name, proc, log_path)
        self.members.append(member)
        return member

    def failed(self) -> list[ServiceProcess]:
        return [m for m in self.members if m.proc.poll() not in (None, 0)]

    def stop(self, timeout_s: float = 30.0) -> dict[str, int | None]:
        for m in self.members:
            if m.proc.poll() is None:
                m.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for m in self.members:
            remaining = max(0.1, deadline - time.monotonic())
            try:
                m.proc.wait(timeout=remaining)
            except subprocess.TimeoutExpired:
                os.killpg(m.proc.pid, signal.SIGKILL)
                m.proc.wait(timeout=5)
        return {m.name: m.proc.returncode for m in self.members}


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
