"""Retrospective search pieces that need no stack: refusals, the IoU tracker, multipart parsing, ids."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest
from fastapi import HTTPException

from lfr.api.routes_search import parse_multipart
from lfr.retro.gallery import GalleryError, check_gallery_name, subject_for, synthetic_embeddings
from lfr.retro.schemas import MissingJustificationError, SearchTarget, check_case_ref, check_reason
from lfr.retro.video import IouTracker
from lfr.vision.detectors.base import Detection


@pytest.mark.parametrize("case", [None, "", "   "])
def test_search_without_case_reference_is_refused(case: str | None) -> None:
    with pytest.raises(MissingJustificationError, match="case reference"):
        check_case_ref(case)


@pytest.mark.parametrize("reason", [None, "", "x"])
def test_search_without_reason_is_refused(reason: str | None) -> None:
    with pytest.raises(MissingJustificationError, match="reason"):
        check_reason(reason)


def test_case_reference_cannot_break_out_of_redis_keys() -> None:
    assert check_case_ref("OP-2024/0113.a") == "OP-2024/0113.a"
    for bad in ("a:b", "x y", "../etc", "*"):
        with pytest.raises(MissingJustificationError):
            check_case_ref(bad)


def test_target_is_watchlists_or_one_gallery() -> None:
    assert SearchTarget(watchlists=["w1"]).kind == "watchlists"
    assert SearchTarget(gallery="custody").kind == "gallery"
    for bad in ({}, {"watchlists": ["w"], "gallery": "g"}):
        with pytest.raises(ValueError):
            SearchTarget(**bad)


@dataclass
class _Q:
    score: float


@dataclass
class _Face:
    detection: Detection
    quality: _Q = field(default_factory=lambda: _Q(0.5))


def _face(x: float, score: float = 0.5) -> _Face:
    return _Face(Detection((x, 10.0, 50.0, 50.0), np.zeros((5, 2), np.float32), 0.99), _Q(score))


def test_tracker_follows_overlapping_boxes_and_keeps_best_shot() -> None:
    tr = IouTracker(iou=0.3, max_age_s=1.0)
    a1 = tr.update([_face(0, 0.4), _face(300, 0.9)], 0, 0.0)  # type: ignore[list-item]
    a2 = tr.update([_face(305, 0.5), _face(5, 0.8)], 5, 0.2)  # type: ignore[list-item]
    assert a2 == [a1[1], a1[0]], "each face stays with the track it overlaps, whatever the order"
    a3 = tr.update([_face(10, 0.6)], 10, 2.0)  # type: ignore[list-item]  # after max_age: the old tracks end
    assert a3[0] not in a1
    tracks = {t.track_id: t for t in tr.finish()}
    assert len(tracks) == 3
    assert tracks[a1[0]].best_frame == 5 and tracks[a1[0]].frames == 2  # quality 0.8 beat 0.4
    assert tracks[a1[1]].best_frame == 0  # 0.9 beat 0.5


def test_multipart_parser_reads_fields_and_binary_file() -> None:
    payload = bytes(range(256)) * 4
    b = "XyZ123"
    body = (
        (
            f'--{b}\r\nContent-Disposition: form-data; name="case_ref"\r\n\r\nOP-1\r\n'
            f'--{b}\r\nContent-Disposition: form-data; name="watchlists"\r\n\r\nw1,w2\r\n'
            f'--{b}\r\nContent-Disposition: form-data; name="file"; filename="p.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + payload
        + f"\r\n--{b}--\r\n".encode()
    )
    fields, files = parse_multipart(f"multipart/form-data; boundary={b}", body)
    assert fields == {"case_ref": ["OP-1"], "watchlists": ["w1,w2"]}
    assert files[0][0] == "file" and files[0][1].filename == "p.jpg" and files[0][1].data == payload
    with pytest.raises(HTTPException):
        parse_multipart("application/json", b"{}")


def test_gallery_names_and_subject_ids() -> None:
    assert check_gallery_name("custody_2024") == "custody_2024"
    for bad in ("Custody", "a-b", "", "_x"):
        with pytest.raises(GalleryError):
            check_gallery_name(bad)
    assert subject_for("REC-001/img1.jpg") == "REC-001"
    assert subject_for("REC 002.jpg") == "REC_002"


def test_synthetic_embeddings_follow_the_real_distribution() -> None:
    rng = np.random.default_rng(0)
    real = rng.normal(0.2, 0.05, size=(200, 16))
    syn = synthetic_embeddings(real, 5000, seed=1)
    assert syn.shape == (5000, 16) and syn.dtype == np.float32
    assert np.allclose(syn.mean(axis=0), real.mean(axis=0), atol=0.01)
    assert np.allclose(syn.std(axis=0), real.std(axis=0), rtol=0.15)


def test_cli_search_without_case_exits_2_before_touching_anything(tmp_path) -> None:
    import typer
    from typer.testing import CliRunner

    from lfr.retro.cli import search_command

    app = typer.Typer()
    app.command("search")(search_command)
    app.command("other")(lambda: None)
    missing = tmp_path / "nothing-here.jpg"  # never opened: the refusal comes first
    res = CliRunner().invoke(app, ["search", str(missing), "--reason", "a real reason", "--gallery", "g"])
    assert res.exit_code == 2 and "case reference" in res.output
    res = CliRunner().invoke(app, ["search", str(missing), "--case", "OP-1", "--gallery", "g"])
    assert res.exit_code == 2 and "reason" in res.output


def _write_video(path, seconds: float, fps: int = 10, frames: int | None = None) -> None:  # type: ignore[no-untyped-def]
    import cv2

    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (64, 48))
    assert out.isOpened()
    for i in range(frames if frames is not None else int(seconds * fps)):
        out.write(np.full((48, 64, 3), i % 255, np.uint8))
    out.release()


def _hide_frame_count(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Make every capture's container claim no frame count (live-recorded files often do)."""
    import cv2

    from lfr.retro import video

    real = cv2.VideoCapture

    class Lying:
        def __init__(self, path: str) -> None:
            self.cap = real(path)

        def get(self, prop: int) -> float:
            return 0.0 if prop == cv2.CAP_PROP_FRAME_COUNT else self.cap.get(prop)

        def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
            return getattr(self.cap, name)

    monkeypatch.setattr(video.cv2, "VideoCapture", Lying)


def test_footage_longer_than_the_limit_is_refused_whole(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from lfr.retro.video import VideoTooLongError, sample_frames

    clip = tmp_path / "clip.avi"
    _write_video(clip, 3.0)
    assert len(list(sample_frames(clip, 5.0, max_seconds=5.0))) >= 10, "inside the limit: all of it"
    with pytest.raises(VideoTooLongError, match=r"is 3\.0 s.*longer than 1 s is refused"):
        next(sample_frames(clip, 5.0, max_seconds=1.0))  # refused before any frame is handed out


def test_footage_whose_container_understates_its_length_is_refused_while_reading(
    tmp_path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    from lfr.retro import video

    clip = tmp_path / "clip.avi"
    _write_video(clip, 3.0)
    _hide_frame_count(monkeypatch)
    handed_out = []
    with pytest.raises(video.VideoTooLongError, match="runs past"):
        for item in video.sample_frames(clip, 5.0, max_seconds=1.0):
            handed_out.append(item)
    assert handed_out and max(t for _, t, _ in handed_out) <= 1.0


def test_index_options_parse_and_refuse_clearly() -> None:
    from lfr.bench.search import parse_index_option

    assert parse_index_option("flat") == ("FLAT", {}, {})
    assert parse_index_option("IVF_FLAT:nlist=1024:nprobe=64") == (
        "IVF_FLAT",
        {"nlist": 1024},
        {"nprobe": 64},
    )
    assert parse_index_option("HNSW:M=16:efConstruction=200:ef=128") == (
        "HNSW",
        {"M": 16, "efConstruction": 200},
        {"ef": 128},
    )
    with pytest.raises(ValueError, match="not one of"):
        parse_index_option("ANNOY")
    with pytest.raises(ValueError, match="key=whole number"):
        parse_index_option("IVF_FLAT:nlist")


def test_retention_default_cannot_exceed_the_maximum() -> None:
    from lfr.core.config import load_settings

    with pytest.raises(Exception, match="max_case_retention_days"):
        load_settings(retro={"case_retention_days": 400, "max_case_retention_days": 365})


@pytest.mark.parametrize("frame_count_known", [True, False])
def test_the_limit_is_the_same_from_metadata_and_while_reading(
    tmp_path, monkeypatch, frame_count_known: bool
) -> None:  # type: ignore[no-untyped-def]
    """10 frames at 10 fps last exactly 1 s and pass a 1 s limit; 11 frames last 1.1 s and are refused,
    whether the container states its length or not."""
    from lfr.retro.video import VideoTooLongError, sample_frames

    exact, over = tmp_path / "exact.avi", tmp_path / "over.avi"
    _write_video(exact, 0, frames=10)
    _write_video(over, 0, frames=11)
    if not frame_count_known:
        _hide_frame_count(monkeypatch)
    assert [i for i, _, _ in sample_frames(exact, 10.0, max_seconds=1.0)] == list(range(10))
    with pytest.raises(VideoTooLongError, match=r"1\.1 s; footage longer than 1 s is refused"):
        list(sample_frames(over, 10.0, max_seconds=1.0))


def test_comma_separated_index_options() -> None:
    from lfr.bench.search import parse_index_options

    assert parse_index_options(["FLAT,IVF_FLAT:nlist=8:nprobe=2", "HNSW"]) == [
        ("FLAT", {}, {}),
        ("IVF_FLAT", {"nlist": 8}, {"nprobe": 2}),
        ("HNSW", {}, {}),
    ]
    with pytest.raises(ValueError, match="key=whole number"):
        parse_index_options(["IVF_FLAT:=8"])


def test_bench_gallery_refuses_a_bad_index_before_building_anything(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import typer
    from typer.testing import CliRunner

    from lfr.bench import search as bench
    from lfr.bench.cli import bench_gallery

    def must_not_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("the benchmark ran despite a bad --index")

    monkeypatch.setattr(bench, "run_gallery_bench", must_not_run)
    app = typer.Typer()
    app.command("gallery")(bench_gallery)
    app.command("other")(lambda: None)
    res = CliRunner().invoke(app, ["gallery", "--json", "--index", "FLAT,ANNOY"])
    assert res.exit_code == 2 and "ANNOY is not one of" in res.output, res.output


@pytest.mark.parametrize(("days", "ok"), [(None, True), (1, True), (365, True), (0, False), (366, False)])
def test_retention_period_bounds(days: int | None, ok: bool) -> None:
    from lfr.core.config import load_settings
    from lfr.retro.cases import CaseRetentionError, check_retention_days

    s = load_settings(retro={"max_case_retention_days": 365})
    if ok:
        assert check_retention_days(s, days) == days
    else:
        with pytest.raises(CaseRetentionError, match=r"outside 1\.\.365 \(retro\.max_case_retention_days\)"):
            check_retention_days(s, days)


def test_cli_retention_above_the_maximum_exits_2_before_connecting(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import typer
    from typer.testing import CliRunner

    from lfr.core import redis_client
    from lfr.core.config import load_settings
    from lfr.retro import cli

    def must_not_connect(*args: object, **kwargs: object) -> None:
        raise AssertionError("connected despite a refused retention")

    monkeypatch.setattr(redis_client, "make_redis", must_not_connect)
    monkeypatch.setattr(cli, "cli_settings", lambda: load_settings(retro={"max_case_retention_days": 180}))
    app = typer.Typer()
    app.command("search")(cli.search_command)
    app.command("other")(lambda: None)
    photo = tmp_path / "p.jpg"
    photo.write_bytes(b"never decoded")
    args = ["search", str(photo), "--case", "OP-1", "--reason", "a real reason", "--gallery", "g"]
    res = CliRunner().invoke(app, [*args, "--retention-days", "181"])
    assert res.exit_code == 2 and "retention of 181 days is outside 1..180" in res.output, res.output
    res = CliRunner().invoke(app, [*args, "--retention-days", "0"])
    assert res.exit_code == 2 and "--retention-days" in res.output, res.output


def test_watchlist_answers_leave_out_subjects_gone_since_the_search_read() -> None:
    """A retrospective answer lists only subjects the confirmation read still holds (a search may read a
    moment behind the latest writes at the default Bounded consistency)."""
    from lfr.core.config import Settings
    from lfr.retro.search import WatchlistSource
    from lfr.watchlist.store import Candidate

    @dataclass
    class Store:
        confirmed: list[list[str]] = field(default_factory=list)

        def search(self, vectors: np.ndarray, watchlist_ids: list[str], top_k: int) -> list[list[Candidate]]:
            return [
                [Candidate("kept", "wl", "wanted", 0.2, 0.9), Candidate("gone", "wl", "wanted", 0.3, 0.85)]
                for _ in vectors
            ]

        def confirm(self, candidates: list[Candidate], watchlist_ids: list[str]) -> list[Candidate]:
            self.confirmed.append([c.subject_id for c in candidates])
            return [c for c in candidates if c.subject_id != "gone"]

    class Card:
        def is_match(self, raw: float, threshold: float | None = None) -> bool:
            return raw < 0.5

    store = Store()
    src = WatchlistSource(Settings(), Card(), ["wl"], store=store)  # type: ignore[arg-type]
    rows = src.search(np.zeros((2, 4), np.float32), top_k=5)
    assert [[c.subject_id for c in row] for row in rows] == [["kept"], ["kept"]]
    assert [c.rank for c in rows[0]] == [1] and rows[0][0].clears_threshold
    assert store.confirmed == [["kept", "gone", "kept", "gone"]], "one confirmation read per search"
