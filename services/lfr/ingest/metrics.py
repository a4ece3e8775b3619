"""Prometheus metrics of the ingest worker, defined once per process.

Why per-camera labels: operators must see which camera is dead, slow or dropping frames; a pod analyses
tens of cameras at most, so the label cardinality stays small. No metric carries anything about a face
beyond counts.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

FRAMES_IN = Counter("lfr_ingest_frames_in_total", "Frames decoded from the camera", ["camera"])
FRAMES_ANALYSED = Counter(
    "lfr_ingest_frames_analysed_total",
    "Sampled frames taken by the analyser (detected unless counted in lfr_ingest_frames_gated_total)",
    ["camera"],
)
FRAMES_GATED = Counter(
    "lfr_ingest_frames_gated_total",
    "Analysed frames whose detection motion gating skipped (no change, no live track)",
    ["camera"],
)
FRAMES_DROPPED = Counter(
    "lfr_ingest_frames_dropped_total",
    "Sampled frames not analysed, by reason: queue_full, corrupt, oversized, deployment_not_live, "
    "key_unavailable, error",
    ["camera", "reason"],
)
FACES = Counter("lfr_ingest_faces_detected_total", "Faces the detector found", ["camera"])
TRACKS = Counter("lfr_ingest_tracks_total", "Face tracks started", ["camera"])
TRACKS_UNSEARCHED = Counter(
    "lfr_ingest_tracks_unsearched_total",
    "Tracks with a face >= quality.min_face_px for >= 1 s that ended without a single search",
    ["camera"],
)
SCENE_CUTS = Counter(
    "lfr_ingest_scene_cuts_total",
    "Analysed frames that started a new shot and ended every live track (ingest.scene_cut_distance)",
    ["camera"],
)
ACTIVE_TRACKS = Gauge("lfr_ingest_active_tracks", "Face tracks alive now", ["camera"])
CROPS = Counter(
    "lfr_ingest_crops_total",
    "Faces by best-shot outcome when offered (rejected_quality, not_better, too_soon, track_limit) and "
    "crops when sent (sent; fallback: of those sent, a track's best face that failed the quality gate; "
    "refresh: of those sent, a steady track's later view); a face held (too_soon) or kept as a refresh "
    "candidate (not_better) and sent later is counted at both steps",
    ["camera", "outcome"],
)
PUBLISH = Counter(
    "lfr_ingest_publish_total",
    "Crop records by publisher outcome (delivered, dropped_overflow, dropped_stale, dropped_shutdown)",
    ["outcome"],
)
PUBLISH_PENDING = Gauge("lfr_ingest_publish_pending", "Crops waiting for the broker")
PUBLISH_IN_FLIGHT = Gauge("lfr_ingest_publish_in_flight", "Crops handed to the producer, not yet acked")
LATENCY = Histogram(
    "lfr_ingest_capture_to_publish_seconds",
    "From frame capture to the broker's acknowledgement of its crop",
    ["camera"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)
DETECT_SECONDS = Histogram(
    "lfr_ingest_detect_seconds",
    "Detector time per analysed frame",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
CAMERA_CONNECTED = Gauge("lfr_ingest_camera_connected", "1 while the stream delivers frames", ["camera"])
CAMERA_INPUT_FPS = Gauge("lfr_ingest_camera_input_fps", "Decoded frames per second", ["camera"])
CAMERA_ANALYSED_FPS = Gauge("lfr_ingest_camera_analysed_fps", "Analysed frames per second", ["camera"])
CAMERA_FRAME_AGE = Gauge(
    "lfr_ingest_camera_last_frame_age_seconds", "Since the last decoded frame", ["camera"]
)
CAMERA_RECONNECTS = Counter(
    "lfr_ingest_camera_reconnects_total", "Stream reconnection attempts after a failure", ["camera"]
)
