"""Camera list validation and stable sharding (sha256(camera_id) mod replicas == ordinal)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from lfr.core.config import load_settings
from lfr.ingest.cameras import (
    CameraConfigError,
    load_cameras,
    my_cameras,
    parse_cameras,
    replica_ordinal,
    shard_of,
    shard_table,
)


def test_valid_list_with_every_source_kind(tmp_path: Path) -> None:
    video = tmp_path / "v.mp4"
    video.write_bytes(b"")
    cams = parse_cameras(
        [
            {"camera_id": "gate-1", "url": "rtsp://user:secret@10.0.0.5:554/stream1", "analyse_fps": 8},
            {"camera_id": "gate-2", "url": "https://cam.example/mjpeg"},
            {"camera_id": "file-1", "url": str(video), "loop": True},
            {"camera_id": "file-2", "url": f"file://{video}"},
            {"camera_id": "usb", "url": 0},
            {"camera_id": "usb2", "url": "1", "deployment_id": "dep-other"},
        ],
        default_deployment="dep-1",
    )
    kinds = {c.camera_id: c.kind for c in cams}
    assert kinds == {
        "gate-1": "rtsp",
        "gate-2": "http",
        "file-1": "file",
        "file-2": "file",
        "usb": "device",
        "usb2": "device",
    }
    by_id = {c.camera_id: c for c in cams}
    assert by_id["file-2"].source == str(video)
    assert by_id["usb2"].source == 1 and by_id["usb2"].deployment_id == "dep-other"
    assert by_id["gate-1"].deployment_id == "dep-1"
    # Credentials never reach logs, metrics or status.
    assert "secret" not in by_id["gate-1"].safe_url and "10.0.0.5" in by_id["gate-1"].safe_url
    settings = load_settings(ingest={"analyse_fps": 5})
    assert by_id["gate-1"].fps(settings) == 8 and by_id["gate-2"].fps(settings) == 5


def test_errors_are_reported_together_and_name_each_entry() -> None:
    with pytest.raises(CameraConfigError) as info:
        parse_cameras(
            [
                {"camera_id": "a", "url": "ftp://x/y"},
                {"camera_id": "b", "url": "rtsp://h/s"},
                {"camera_id": "b", "url": "rtsp://h/t"},
                {"camera_id": "c", "url": "rtsp://h/u", "loop": True},
                {"camera_id": "d"},
                {"camera_id": "bad id!", "url": "rtsp://h/v"},
            ],
            default_deployment="dep-1",
        )
    msg = str(info.value)
    assert "entry 0 (a): url: unknown scheme 'ftp'" in msg
    assert "entry 2 (b): duplicate camera_id (also entry 1)" in msg
    assert "entry 3 (c)" in msg and "loop applies to video files only" in msg
    assert "entry 4 (d): url" in msg
    assert "entry 5 (bad id!): camera_id" in msg


def test_missing_deployment_says_where_to_set_it() -> None:
    with pytest.raises(CameraConfigError, match="set it on the camera or set deployment_id"):
        parse_cameras([{"camera_id": "a", "url": "rtsp://h/s"}], default_deployment=None)


def test_load_cameras_file_errors(tmp_path: Path) -> None:
    s = load_settings()
    with pytest.raises(CameraConfigError, match="no cameras file"):
        load_cameras(s)
    with pytest.raises(CameraConfigError, match="does not exist"):
        load_cameras(s, tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("camera_id: [unclosed")
    with pytest.raises(CameraConfigError, match="not valid YAML"):
        load_cameras(s, bad)
    notlist = tmp_path / "map.yaml"
    notlist.write_text("camera_id: a\n")
    with pytest.raises(CameraConfigError, match="expected a list"):
        load_cameras(s, notlist)
    good = tmp_path / "cams.yaml"
    good.write_text("- {camera_id: a, deployment_id: d, url: 'rtsp://h/s'}\n")
    assert [c.camera_id for c in load_cameras(s, good)] == ["a"]


def test_shard_is_sha256_mod_replicas_and_stable() -> None:
    expected = int.from_bytes(hashlib.sha256(b"gate-1").digest()[:8], "big") % 7
    assert shard_of("gate-1", 7) == expected
    assert shard_of("gate-1", 1) == 0
    # Pinned values: a change of hash would silently move every camera to another pod.
    assert [shard_of(f"cam-{i}", 4) for i in range(8)] == [
        int.from_bytes(hashlib.sha256(f"cam-{i}".encode()).digest()[:8], "big") % 4 for i in range(8)
    ]


def test_shards_partition_the_cameras_evenly() -> None:
    cams = parse_cameras(
        [{"camera_id": f"cam-{i:03d}", "url": f"rtsp://h/{i}"} for i in range(400)], default_deployment="d"
    )
    parts = [my_cameras(cams, 4, o) for o in range(4)]
    ids = [c.camera_id for p in parts for c in p]
    assert sorted(ids) == sorted(c.camera_id for c in cams)  # every camera exactly once
    assert all(70 <= len(p) <= 130 for p in parts), [len(p) for p in parts]
    table = shard_table(cams, 4)
    assert [len(v) for v in table.values()] == [len(p) for p in parts]


def test_replica_ordinal_from_setting_or_statefulset_hostname() -> None:
    assert replica_ordinal(load_settings(ingest={"replicas": 1}), hostname="anything") == 0
    assert replica_ordinal(load_settings(ingest={"replicas": 3}), hostname="lfr-ingest-2") == 2
    assert replica_ordinal(load_settings(ingest={"replicas": 3, "replica_ordinal": 1}), hostname="x-2") == 1
    with pytest.raises(CameraConfigError, match="no -N ordinal suffix"):
        replica_ordinal(load_settings(ingest={"replicas": 3}), hostname="laptop")
    with pytest.raises(CameraConfigError, match=r"not below ingest\.replicas=3"):
        replica_ordinal(load_settings(ingest={"replicas": 3}), hostname="lfr-ingest-3")
