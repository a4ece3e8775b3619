"""`lfr status` text: every section of the document, and what needs attention said plainly."""

from __future__ import annotations

from lfr.monitor.render import render
from lfr.monitor.schema import (
    CameraStatus,
    DeploymentFigures,
    GroupStatus,
    KeyTtls,
    Member,
    MinuteFigures,
    MonitorState,
    OpsEvent,
    OpsStatus,
    PartitionLag,
    StackPart,
    TopicRate,
)


def _status() -> OpsStatus:
    return OpsStatus(
        generated_at="2026-12-05T17:00:00Z",
        healthy=False,
        stack=[
            StackPart(name="kafka", reachable=True, detail="kafka:9092"),
            StackPart(name="milvus", reachable=False, detail="milvus:19530: ConnectionRefusedError"),
        ],
        groups=[
            GroupStatus(
                group="lfr-embedder",
                role="embedder",
                topics=["lfr.crops.v1"],
                state="Stable",
                members=[Member(member_id="m1")],
                lag=42,
                partitions=[
                    PartitionLag(topic="lfr.crops.v1", partition=0, committed=100, end=142, lag=42),
                    PartitionLag(topic="lfr.crops.v1", partition=1, committed=7, end=7, lag=0),
                ],
            )
        ],
        throughput=[TopicRate(topic="lfr.crops.v1", end_offset_total=149, records_per_s=3.5)],
        cameras=[
            CameraStatus(
                camera_id="cam-1",
                health="silent",
                input_fps=0.0,
                last_minute=MinuteFigures(minute="2026-12-05T16:59:00Z", frames=0, faces=0, crops=0),
            )
        ],
        deployments=[DeploymentFigures(deployment_id="dep-1", status="running", alert_rate_jump=True)],
        keys=KeyTtls(crop_keys=3, crop_key_ttl_s=[40, 70, 110], alert_keys=[]),
        events=[OpsEvent(kind="camera_silent", subject="cam-1", at="2026-12-05T16:59:40Z")],
        monitor=MonitorState(running=False),
    )


def test_status_text_names_what_needs_attention() -> None:
    text = render(_status())
    assert text.startswith("LFR status at 2026-12-05T17:00:00Z: ATTENTION")
    assert "milvus    DOWN  milvus:19530: ConnectionRefusedError" in text
    assert "monitor   NOT RUNNING" in text
    assert "lfr-embedder (embedder): Stable, 1 member(s), lag 42" in text
    assert "lfr.crops.v1[0] committed 100 end 142 lag 42" in text
    assert "lfr.crops.v1[1]" not in text  # partitions without lag are not listed
    assert "cam-1" in text and "silent" in text
    assert "RATE JUMP" in text
    assert "crop keys alive: 3, TTL 40-110 s" in text
    assert "camera_silent" in text


def test_crop_keys_out_of_sight_are_said_to_be() -> None:
    status = _status()
    status.keys = KeyTtls(crop_keys_visible=False, crop_keys=0, crop_key_ttl_s=[], alert_keys=[])
    assert "crop keys alive: not visible from here" in render(status)
