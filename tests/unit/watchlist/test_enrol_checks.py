"""Enrolment input checks without models: headers, size limits, decoding, thumbnails, bulk sources."""

from __future__ import annotations

import base64
import struct
import zlib
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from lfr.core.config import load_settings
from lfr.watchlist.enrol import (
    EnrolmentRejected,
    RejectCode,
    decode_checked,
    image_size,
    make_thumbnail,
    prepare,
    read_source,
)
from lfr.watchlist.enrol.sources import folder_subject_id


def _img(w: int = 64, h: int = 48) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("ext", [".png", ".jpg", ".bmp"])
def test_header_size_matches_real_encoders(ext: str) -> None:
    ok, buf = cv2.imencode(ext, _img(123, 45))
    assert ok and image_size(buf.tobytes()) == (123, 45)


def test_progressive_jpeg_header() -> None:
    ok, buf = cv2.imencode(".jpg", _img(77, 33), [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])
    assert ok and image_size(buf.tobytes()) == (77, 33)


def test_unknown_header_is_none() -> None:
    assert image_size(b"not an image at all") is None


def _png_header_only(w: int, h: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + chunk


def test_decompression_bomb_refused_from_the_header() -> None:
    bomb = _png_header_only(100_000, 100_000)  # 10 gigapixels declared in a 33-byte file
    with pytest.raises(EnrolmentRejected) as err:
        decode_checked(bomb, max_bytes=1_000_000, max_pixels=40_000_000)
    assert err.value.code == RejectCode.OVERSIZED and "100000x100000" in str(err.value)


def test_byte_limit_empty_and_garbage() -> None:
    with pytest.raises(EnrolmentRejected) as err:
        decode_checked(b"x" * 101, max_bytes=100, max_pixels=10**6)
    assert err.value.code == RejectCode.OVERSIZED and "api.max_upload_bytes" in str(err.value)
    with pytest.raises(EnrolmentRejected) as err:
        decode_checked(b"", max_bytes=100, max_pixels=10**6)
    assert err.value.code == RejectCode.UNREADABLE
    with pytest.raises(EnrolmentRejected) as err:
        decode_checked(b"\xff\xd8garbage" * 10, max_bytes=1000, max_pixels=10**6)
    assert err.value.code == RejectCode.UNREADABLE and "not a readable image" in str(err.value)


def test_decode_good_image() -> None:
    _ok, buf = cv2.imencode(".png", _img(40, 30))
    img = decode_checked(buf.tobytes(), max_bytes=10**6, max_pixels=10**6)
    assert img.shape == (30, 40, 3) and img.dtype == np.uint8


def test_thumbnail_is_a_small_jpeg() -> None:
    text = make_thumbnail(_img(150, 150))
    data = base64.b64decode(text)
    thumb = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert thumb.shape == (96, 96, 3) and len(text) <= 16_000
    tiny = make_thumbnail(_img(150, 150), max_chars=4000)  # shrinks until it fits
    assert 0 < len(tiny) <= 4000


class _Analyzer:
    def __init__(self, exc: Exception | None = None) -> None:
        self.exc = exc
        self.seen: list[tuple[int, ...]] = []

    def enrol(self, image: np.ndarray) -> SimpleNamespace:
        self.seen.append(image.shape)
        if self.exc is not None:
            raise self.exc
        det = SimpleNamespace(bbox=(1.0, 2.0, 80.0, 90.0))
        return SimpleNamespace(embedding=np.ones(4, np.float32), chip=_img(150, 150), detection=det)


def test_prepare_maps_vision_refusals_to_reason_codes() -> None:
    from lfr.vision import MultipleFacesError, NoFaceError

    settings = load_settings()
    _ok, buf = cv2.imencode(".png", _img(64, 64))
    data = buf.tobytes()
    with pytest.raises(EnrolmentRejected) as err:
        prepare(_Analyzer(MultipleFacesError("2 faces found")), data, settings)
    assert err.value.code == RejectCode.SEVERAL_FACES and "2 faces" in str(err.value)
    with pytest.raises(EnrolmentRejected) as err:
        prepare(_Analyzer(NoFaceError("no face")), data, settings)
    assert err.value.code == RejectCode.NO_FACE
    out = prepare(_Analyzer(), data, settings)
    assert out.embedding.shape == (4,) and out.face_px == 80 and len(out.image_sha256) == 64


def test_large_photos_are_reduced_before_analysis() -> None:
    settings = load_settings()
    _ok, buf = cv2.imencode(".jpg", _img(3200, 2000))
    analyzer = _Analyzer()
    prepare(analyzer, buf.tobytes(), settings)
    assert analyzer.seen == [(1000, 1600, 3)]


def test_folder_source(tmp_path: Path) -> None:
    _ok, buf = cv2.imencode(".png", _img())
    for rel in ["ann_smith/a.png", "ann_smith/b.jpg", "bob/c.png", "loose.png"]:
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(buf.tobytes())
    (tmp_path / "bob" / "notes.txt").write_text("not an image")
    items = read_source(tmp_path, "wl-1", {"category": "missing"})
    refs = [i.ref for i in items]
    assert refs == ["ann_smith/a.png", "ann_smith/b.jpg", "bob/c.png", "loose.png"]
    ann = items[0].meta
    assert ann is not None and ann.display_name == "ann smith" and ann.category == "missing"
    assert ann.subject_id == folder_subject_id("wl-1", "ann_smith") and "ann" not in ann.subject_id
    assert items[1].meta == ann
    assert items[3].error and "subject folder" in items[3].error


def test_csv_source(tmp_path: Path) -> None:
    (tmp_path / "imgs").mkdir()
    csv_text = (
        "subject_id,display_name,image_path,category,source,image_date,expires_at\n"
        "PNC-1,A Person,imgs/a.png,wanted,custody,2020-01-02,2030-01-01\n"
        "PNC-2,B Person,imgs/b.png,,,,\n"
        "bad id,C,imgs/c.png,wanted,,,\n"
        "PNC-4,D,imgs/d.png,suspect,,,\n"
        "PNC-5,E,,wanted,,,\n"
        "PNC-6,F,imgs/f.png,wanted,,someday,\n"
    )
    path = tmp_path / "list.csv"
    path.write_text(csv_text)
    items = read_source(path, "wl-1", {"category": "vulnerable", "source": "import"})
    assert [i.ref for i in items] == [f"list.csv:{n}" for n in range(2, 8)]
    first, second = items[0].meta, items[1].meta
    assert first is not None and first.image_date == "2020-01-02" and first.expires_at > 0
    assert second is not None and second.category == "vulnerable" and second.source == "import"
    assert items[0].image_path == tmp_path / "imgs" / "a.png"
    assert "subject_id" in items[2].error
    assert "category" in items[3].error
    assert "image_path is empty" in items[4].error
    assert "YYYY-MM-DD" in items[5].error


def test_csv_missing_or_unknown_columns(tmp_path: Path) -> None:
    p = tmp_path / "x.csv"
    p.write_text("subject_id,name\nA,B\n")
    with pytest.raises(ValueError, match="lacks column"):
        read_source(p, "wl", {})
    p.write_text("subject_id,image_path,colour\nA,b.png,red\n")
    with pytest.raises(ValueError, match="unknown column"):
        read_source(p, "wl", {})


def test_source_must_be_folder_or_csv(tmp_path: Path) -> None:
    p = tmp_path / "x.txt"
    p.write_text("")
    with pytest.raises(ValueError, match="neither a folder"):
        read_source(p, "wl", {})
