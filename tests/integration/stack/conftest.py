"""Fixtures for the production parts of the stack: the Milvus standalone server and Milvus Lite side by side.

The standalone server starts once per session, lazily (only when a test asks for it), with token auth on,
through the same launcher as ``lfr stack up``. ``milvus_backend`` parametrises a test over both servers.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from lfr.core.config import Settings
from lfr.stack import milvus_server
from lfr.stack.local import free_port

ROOT_TOKEN = "root:Milvus"  # the server's built-in administrator with its default password (test only)


def _healthy(metrics_port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/healthz", timeout=1) as r:
            return b"OK" in r.read()
    except (OSError, urllib.error.URLError):
        return False


@dataclass
class MilvusProcess:
    """A Milvus server this session started (standalone via the stack's launcher, or Milvus Lite)."""

    kind: str
    data_dir: Path
    port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    others: str = field(default_factory=lambda: ",".join(str(free_port()) for _ in milvus_server.PORT_KEYS))
    proc: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def token(self) -> str:
        return ROOT_TOKEN if self.kind == "standalone" else ""

    def start(self, timeout_s: float = 120.0) -> float:
        """Start (same ports and data as before on a restart); returns the seconds until it answered."""
        t0 = time.monotonic()
        if self.kind == "standalone":
            argv = milvus_server.command(self.data_dir, self.port, self.metrics_port, self.others, "--auth")
        else:
            argv = [sys.executable, "-m", "milvus_lite", "server", "--data-dir", str(self.data_dir)]
            argv += ["--host", "127.0.0.1", "--port", str(self.port)]
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.data_dir.parent / f"{self.kind}-{self.port}.log", "ab") as out:
            self.proc = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        while time.monotonic() - t0 < timeout_s:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Milvus {self.kind} exited during start-up (log beside {self.data_dir})")
            if self._answers():
                return time.monotonic() - t0
            time.sleep(0.2)
        raise RuntimeError(f"Milvus {self.kind} did not answer within {timeout_s:.0f}s")

    def _answers(self) -> bool:
        if self.kind == "standalone":
            return _healthy(self.metrics_port)
        import socket

        with socket.socket() as s:
            s.settimeout(0.5)
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def kill(self) -> None:
        """SIGKILL the whole process group: the harshest stop, what a crash or an OOM kill looks like."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None


@pytest.fixture(scope="session")
def standalone_milvus() -> Iterator[MilvusProcess]:
    """The Milvus standalone server, token auth on; started on first use, stopped when the session ends."""
    try:
        import milvus  # noqa: F401
    except ImportError:
        pytest.skip("the Milvus standalone server needs PyPI 'milvus' (pip install 'lfr[stack]')")
    root = Path(tempfile.mkdtemp(prefix="lfr-test-milvus-"))
    server = MilvusProcess("standalone", root / "milvus")
    try:
        server.start()
        yield server
    finally:
        server.kill()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(params=["lite", "standalone"])
def milvus_backend(request, settings_for) -> Settings:  # type: ignore[no-untyped-def]
    """Per-test settings against Milvus Lite (the session stack's) or the standalone server, own prefixes."""
    tag = uuid.uuid4().hex[:8]
    milvus = {"collection_prefix": f"t{tag}_", "gallery_prefix": f"g{tag}_"}
    if request.param == "standalone":
        server: MilvusProcess = request.getfixturevalue("standalone_milvus")
        milvus.update(uri=server.uri, token=server.token)
    settings: Settings = settings_for(milvus=milvus)
    return settings
