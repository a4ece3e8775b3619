"""The operations status document: one shape for `lfr status --json` and ``GET /api/v1/ops/status``.

Counts, rates, ids and TTLs only: no image, embedding, subject or key material ever appears here, so the
operations role can read it without being cleared for biometric data.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

CameraHealth = Literal["ok", "silent", "disconnected", "no report"]
EventKind = Literal["camera_silent", "camera_recovered", "alert_rate_jump", "alert_rate_normal"]


class StackPart(BaseModel):
    name: Literal["kafka", "redis", "keystore", "milvus"]
    reachable: bool
    detail: str = Field("", description="address checked and, when unreachable, the error type")


class Member(BaseModel):
    member_id: str
    client_id: str = ""
    host: str = ""


class PartitionLag(BaseModel):
    topic: str
    partition: int
    committed: int | None = Field(description="the group's committed offset; null when it never committed")
    end: int = Field(description="the partition's end offset (next offset to be written)")
    lag: int = Field(description="end - committed (end - start of retained records when never committed)")


class GroupStatus(BaseModel):
    group: str
    role: str = Field(description="which service the group is (embedder, alerting, monitor, other)")
    topics: list[str]
    state: str = Field(description="the broker's group state (Stable, Empty, ...); absent: no such group")
    members: list[Member]
    lag: int = Field(description="sum of the partitions' lag")
    partitions: list[PartitionLag]


class TopicRate(BaseModel):
    topic: str
    end_offset_total: int = Field(description="sum of the partitions' end offsets: records ever written")
    records_per_s: float | None = Field(description="since the previous sample; null on the first call")


class MinuteFigures(BaseModel):
    minute: str = Field(description="start of the minute, UTC ISO-8601")
    frames: int = 0
    analysed: int = 0
    faces: int = 0
    crops: int = 0


class CameraStatus(BaseModel):
    camera_id: str
    deployment_id: str = ""
    health: CameraHealth
    state: str = Field("", description="the ingest replica's view: connected, reconnecting, ... or empty")
    connected: bool = False
    input_fps: float | None = None
    analysed_fps: float | None = None
    last_frame_age_s: float | None = None
    reconnects: int = 0
    replica: int | None = None
    last_minute: MinuteFigures | None = Field(None, description="the monitor's last complete minute")
    silent_since: str | None = Field(None, description="when the monitor raised camera_silent (UTC)")


class DeploymentFigures(BaseModel):
    deployment_id: str
    status: str = Field("", description="the deployment's lifecycle status, when it is known")
    alerts_last_minute: int = 0
    alerts_baseline_per_min: float = Field(0.0, description="mean over the monitor's baseline minutes")
    alert_rate_jump: bool = False
    outcomes: dict[str, int] = Field(
        default_factory=dict, description="adjudications in the kept window: match, no_match, unable"
    )


class AlertKeyTtl(BaseModel):
    deployment_id: str
    ttl_s: int | None


class KeyTtls(BaseModel):
    crop_keys_visible: bool = Field(
        True,
        description="false where no crop key store is configured for this process (the chart lets only "
        "ingest and the embedder reach it): crop_keys is then not counted",
    )
    crop_keys: int = Field(description="crop data keys alive in the key store now")
    crop_key_ttl_s: list[int] = Field(description="their remaining lifetimes, shortest first")
    alert_keys: list[AlertKeyTtl] = Field(description="per-deployment alert keys and their remaining TTL")


class OpsEvent(BaseModel):
    kind: EventKind
    subject: str = Field(description="the camera id or deployment id the event is about")
    at: str = Field(description="UTC ISO-8601")
    detail: dict[str, float | int | str] = Field(default_factory=dict)


class MonitorState(BaseModel):
    running: bool = Field(description="a monitor stage wrote its heartbeat within the last 30 s")
    updated_at: str | None = None
    host: str = ""
    gaps_filled: int = Field(
        0,
        description="records the offset guard re-read from the broker because faust skipped them (all time)",
    )


class OpsStatus(BaseModel):
    generated_at: str
    healthy: bool = Field(description="every stack part reachable, no silent camera, no rate jump")
    stack: list[StackPart]
    groups: list[GroupStatus]
    throughput: list[TopicRate]
    cameras: list[CameraStatus]
    deployments: list[DeploymentFigures]
    keys: KeyTtls
    events: list[OpsEvent] = Field(description="the monitor's latest operations events, newest first")
    monitor: MonitorState
