"""Camera list and sharding: which cameras exist, and which of them this ingest replica analyses.

Why a separate YAML list rather than settings: the list changes with every deployment (a van's cameras, a
stadium's gates) and in Kubernetes it is mounted from a ConfigMap or, when URLs carry credentials, a Secret.

Why stable hashing: each replica of the ingest StatefulSet must pick its cameras without talking to the
others, and a pod restart must pick the same cameras again. ``sha256(camera_id) mod replicas == ordinal``
needs only the pod's ordinal (from ``<name>-N`` hostnames) and the replica count, both of which the Helm
chart renders from one value. Python's ``hash()`` is salted per process and therefore unusable here.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from lfr.core.config import Settings

SourceKind = Literal["rtsp", "http", "file", "device"]
NETWORK_SCHEMES = {"rtsp": "rtsp", "rtsps": "rtsp", "http": "http", "https": "http"}
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_CREDENTIALS = re.compile(r"(?<=://)[^/@\s]+@")
_ORDINAL = re.compile(r"-(\d+)$")


class CameraConfigError(ValueError):
    """The cameras file is missing, unreadable or invalid; the message names the file and each entry."""


class Camera(BaseModel):
    """One camera: where its stream comes from, which deployment it serves, how often it is analysed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    camera_id: str
    deployment_id: str
    url: str | int = Field(description="rtsp(s)://, http(s):// (MJPEG), a file path or a device index")
    analyse_fps: float | None = Field(None, gt=0, le=60, description="default: ingest.analyse_fps")
    loop: bool = Field(False, description="files only: start again at the end (demos, soak tests)")
    motion_gating: bool | None = Field(
        None, description="default: ingest.motion_gating; true only for fixed cameras (ingest README)"
    )

    @field_validator("camera_id", "deployment_id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not _ID.match(v):
            raise ValueError(f"{v!r} must be 1-128 characters of letters, digits, '.', '_', ':' or '-'")
        return v

    @field_validator("url")
    @classmethod
    def _url(cls, v: str | int) -> str | int:
        if isinstance(v, int):
            if v < 0:
                raise ValueError("a device index must be 0 or more")
            return v
        v = v.strip()
        if not v:
            raise ValueError("url must not be empty")
        if v.isdigit():
            return int(v)
        m = _SCHEME.match(v)
        if m and m.group(1).lower() not in (*NETWORK_SCHEMES, "file"):
            raise ValueError(
                f"unknown scheme {m.group(1)!r}: use rtsp://, rtsps://, http(s):// (MJPEG), file:// or a path"
            )
        return v

    @model_validator(mode="after")
    def _loop_only_for_files(self) -> Camera:
        if self.loop and self.kind != "file":
            raise ValueError("loop applies to video files only")
        return self

    @property
    def kind(self) -> SourceKind:
        if isinstance(self.url, int):
            return "device"
        m = _SCHEME.match(self.url)
        if m is None:
            return "device" if self.url.startswith("/dev/video") else "file"
        scheme = m.group(1).lower()
        return "file" if scheme == "file" else NETWORK_SCHEMES[scheme]  # type: ignore[return-value]

    @property
    def source(self) -> str | int:
        """What OpenCV opens: the URL, the local path (file:// stripped) or the device index."""
        if isinstance(self.url, str) and self.url.lower().startswith("file://"):
            return self.url[len("file://") :]
        return self.url

    @property
    def safe_url(self) -> str:
        """The URL with any ``user:password@`` removed: what logs, metrics and status may show."""
        return redact(str(self.url))

    def fps(self, settings: Settings) -> float:
        return self.analyse_fps or settings.ingest.analyse_fps


def redact(url: str) -> str:
    return _CREDENTIALS.sub("***@", url)


def parse_cameras(data: Any, default_deployment: str | None, origin: str = "cameras file") -> list[Camera]:
    """Validate a YAML-loaded camera list; every problem is reported at once, by entry."""
    if data is None:
        return []
    if not isinstance(data, list):
        raise CameraConfigError(f"{origin}: expected a list of cameras at the top level")
    cameras: list[Camera] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    for i, entry in enumerate(data):
        label = f"entry {i}"
        if not isinstance(entry, dict):
            problems.append(f"{label}: expected a mapping with camera_id, url, ...")
            continue
        label = f"entry {i} ({entry.get('camera_id', 'no camera_id')})"
        doc = dict(entry)
        if doc.get("deployment_id") is None and default_deployment:
            doc["deployment_id"] = default_deployment
        try:
            cam = Camera.model_validate(doc)
        except ValidationError as exc:
            for err in exc.errors():
                where = ".".join(str(p) for p in err["loc"]) or "(entry)"
                msg = err["msg"].removeprefix("Value error, ")
                if where == "deployment_id" and err["type"] == "missing":
                    msg = "missing: set it on the camera or set deployment_id in the settings"
                problems.append(f"{label}: {where}: {msg}")
            continue
        if cam.camera_id in seen:
            problems.append(f"{label}: duplicate camera_id (also entry {seen[cam.camera_id]})")
            continue
        seen[cam.camera_id] = i
        cameras.append(cam)
    if problems:
        raise CameraConfigError(f"{origin} is invalid:\n  " + "\n  ".join(problems))
    return cameras


def load_cameras(settings: Settings, path: Path | None = None) -> list[Camera]:
    """Every camera in ``path`` (default ``settings.ingest.cameras_file``)."""
    p = path or settings.ingest.cameras_file
    if p is None:
        raise CameraConfigError("no cameras file: set ingest.cameras_file (LFR_INGEST__CAMERAS_FILE)")
    p = Path(p)
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise CameraConfigError(f"cameras file {p} does not exist") from None
    except OSError as exc:
        raise CameraConfigError(f"cameras file {p} is unreadable: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CameraConfigError(f"cameras file {p} is not valid YAML: {exc}") from None
    return parse_cameras(data, settings.deployment_id, origin=f"cameras file {p}")


def shard_of(camera_id: str, replicas: int) -> int:
    """The replica ordinal that analyses ``camera_id``: stable across processes, hosts and versions."""
    if replicas < 1:
        raise ValueError("replicas must be at least 1")
    digest = hashlib.sha256(camera_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % replicas


def replica_ordinal(settings: Settings, hostname: str | None = None) -> int:
    """This replica's ordinal: ``ingest.replica_ordinal`` or the ``-N`` suffix of the hostname.

    With one replica the ordinal is 0 whatever the hostname. With several, a hostname without a numeric
    suffix is an error rather than a guess: two pods guessing 0 would analyse the same cameras twice and
    leave other cameras unwatched.
    """
    replicas = settings.ingest.replicas
    ordinal = settings.ingest.replica_ordinal
    if ordinal is None:
        if replicas == 1:
            return 0
        host = hostname if hostname is not None else os.environ.get("HOSTNAME") or socket.gethostname()
        m = _ORDINAL.search(host)
        if m is None:
            raise CameraConfigError(
                f"ingest.replicas={replicas} but the hostname {host!r} has no -N ordinal suffix: run as a "
                "StatefulSet or set ingest.replica_ordinal (LFR_INGEST__REPLICA_ORDINAL)"
            )
        ordinal = int(m.group(1))
    if ordinal >= replicas:
        raise CameraConfigError(f"replica ordinal {ordinal} is not below ingest.replicas={replicas}")
    return ordinal


def my_cameras(cameras: list[Camera], replicas: int, ordinal: int) -> list[Camera]:
    return [c for c in cameras if shard_of(c.camera_id, replicas) == ordinal]


def shard_table(cameras: list[Camera], replicas: int) -> dict[int, list[str]]:
    """Which replica analyses which camera (for ``lfr cameras status`` and capacity planning)."""
    table: dict[int, list[str]] = {i: [] for i in range(replicas)}
    for c in cameras:
        table[shard_of(c.camera_id, replicas)].append(c.camera_id)
    return table
