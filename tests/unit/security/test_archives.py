"""Archive members (the demo's sample photos come from downloaded packages): read by name into memory,
never extracted to a path the archive chooses, and a member over the size limit is refused from its header
before it is decompressed (a zip bomb cannot exhaust memory ahead of the sha256 check)."""

from __future__ import annotations

import io
import os
import tarfile
import zipfile
from pathlib import Path

import pytest

from lfr.ingest.demo_scene import MAX_MEMBER_BYTES, DemoSceneError, _read_members

BOMB = b"\0" * (MAX_MEMBER_BYTES + 1)


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _tar(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize("make", [_zip, _tar], ids=["zip", "tar.gz"])
def test_members_are_read_by_name_and_bombs_refused(tmp_path: Path, make) -> None:  # type: ignore[no-untyped-def]
    suffix = ".zip" if make is _zip else ".tar.gz"
    members = {"pkg/photo.jpg": b"\xff\xd8 photo", "../../escape.jpg": b"evil", "pkg/bomb.jpg": BOMB}
    archive = make(tmp_path / f"a{suffix}", members)
    before = sorted(os.listdir(tmp_path))
    got = _read_members(archive, ["pkg/photo.jpg", "../../escape.jpg"])
    assert got == {"pkg/photo.jpg": b"\xff\xd8 photo", "../../escape.jpg": b"evil"}
    assert sorted(os.listdir(tmp_path)) == before and not (tmp_path.parent / "escape.jpg").exists()
    with pytest.raises(DemoSceneError, match="over"):
        _read_members(archive, ["pkg/bomb.jpg"])
    with pytest.raises(KeyError):
        _read_members(archive, ["pkg/absent.jpg"])
