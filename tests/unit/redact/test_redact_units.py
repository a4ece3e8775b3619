"""Unit tests of redaction's parts: tracking, detection schedule, cover plan, masks, keep rules, refusals."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from lfr.redact.engine import seed_only, seed_stride
from lfr.redact.keep import by_number, recognise
from lfr.redact.masks import PIXEL_BLOCKS, mask_image, mask_planes
from lfr.redact.plan import MAX_SPEED, CoverRules, frame_plan, track_boxes
from lfr.redact.schedule import detection_stride, needs_detail, refine
from lfr.redact.service import MissingJustificationError, RedactError, RedactRequest, check_request
from lfr.redact.tracks import Observation, Track, Tracker
from lfr.vision import Detection


# ---- tracking ----------------------------------------------------------------------------------------
def test_tracker_follows_a_moving_face_across_gaps_and_numbers_in_order() -> None:
    tr = Tracker(max_gap=10)
    for f in range(0, 40, 4):  # face A moves 10 px per frame: 40 px (a whole width) between detections
        boxes = [(10.0 + 10 * f, 50.0, 40.0, 40.0)]
        if f >= 20:
            boxes.append((300.0, 200.0, 30.0, 30.0))  # face B appears later
        tr.update(f, boxes, [0.99] * len(boxes))
    assert [t.track_id for t in tr.tracks] == [1, 2]
    assert len(tr.tracks[0].observations) == 10 and tr.tracks[1].first_frame == 20


def test_tracker_keeps_crossing_faces_apart_by_predicted_motion() -> None:
    tr = Tracker(max_gap=8)
    for f in range(0, 21, 2):
        a = (20.0 + 12 * f, 100.0, 40.0, 40.0)  # left to right
        b = (260.0 - 12 * f, 104.0, 40.0, 40.0)  # right to left, crossing A around frame 10
        tr.update(f, [a, b] if f % 4 else [b, a], [0.9, 0.9])
    assert len(tr.tracks) == 2
    xs = [o.box[0] for o in tr.tracks[0].observations]
    assert xs == sorted(xs) or xs == sorted(xs, reverse=True)


def test_no_track_continues_across_a_shot_cut() -> None:
    tr = Tracker(max_gap=8)
    tr.update(0, [(100.0, 100.0, 40.0, 40.0)], [0.99])
    tr.cut()
    tr.update(1, [(102.0, 100.0, 40.0, 40.0)], [0.99])  # same place, different shot: another person
    tr.update(2, [(104.0, 100.0, 40.0, 40.0)], [0.99])
    assert [len(t.observations) for t in tr.tracks] == [1, 2]


def test_tracker_refuses_frames_out_of_order() -> None:
    tr = Tracker(max_gap=4)
    tr.update(5, [], [])
    with pytest.raises(ValueError):
        tr.update(5, [], [])


# ---- schedule ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Det:
    bbox: tuple[float, float, float, float]
    score: float = 0.99


def test_detection_stride() -> None:
    assert detection_stride(25, 0.16) == 4
    assert detection_stride(29.97, 0.16) == 4
    assert detection_stride(5, 0.16) == 1


def test_needs_detail_for_new_or_fast_faces_not_for_leaving_ones() -> None:
    face = (100.0, 100.0, 40.0, 40.0)
    assert not needs_detail([face], [(104.0, 100.0, 40.0, 40.0)])  # steady
    assert needs_detail([], [face])  # appeared
    assert not needs_detail([face], [])  # left: the hold covers it
    assert needs_detail([face], [(130.0, 100.0, 40.0, 40.0)])  # 0.75 widths: fast
    assert not needs_detail([], [face], known=[(102.0, 100.0, 40.0, 40.0)])  # a tracked face seen again


def test_refine_detects_down_to_adjacent_frames_where_a_face_appears() -> None:
    appear = 5  # the face is visible from frame 5 on
    calls: list[int] = []

    def detect_at(i: int) -> list[Det]:
        calls.append(i)
        return [Det((50.0, 50.0, 30.0, 30.0))] if i >= appear else []

    found = {0: detect_at(0), 8: detect_at(8)}
    calls.clear()
    refine(0, 8, found, detect_at)
    assert 4 in calls and appear in calls and 6 in calls
    assert found[4] == [] and found[appear]  # the first frame with the face was found


def test_refine_costs_nothing_on_a_steady_scene_and_ignores_weak_blobs() -> None:
    calls: list[int] = []

    def detect_at(i: int) -> list[Det]:
        calls.append(i)
        return [Det((50.0, 50.0, 30.0, 30.0))]

    found = {0: detect_at(0), 8: [*detect_at(8), Det((300.0, 10.0, 25.0, 25.0), score=0.6)]}
    calls.clear()
    refine(0, 8, found, detect_at, min_score=0.9)
    assert calls == []


# ---- cover plan ----------------------------------------------------------------------------------------
def _track(*obs: tuple[int, float]) -> Track:
    return Track(1, [Observation(f, (x, 100.0, 40.0, 40.0), 0.99) for f, x in obs])


def test_plan_interpolates_between_detections_and_grows_with_distance() -> None:
    rules = CoverRules(margin=0.0, motion_margin=0.1, extend=0)
    boxes = dict(track_boxes(_track((0, 100.0), (4, 140.0)), rules, 100, 1000, 1000))
    assert sorted(boxes) == [0, 1, 2, 3, 4]
    assert boxes[0] == pytest.approx((100.0, 100.0, 40.0, 40.0))
    x, _, w, _ = boxes[2]  # halfway, 2 frames from either detection: +20 % each side
    assert x + w / 2 == pytest.approx(140.0) and w == pytest.approx(40.0 * 1.4)


def test_plan_covers_before_first_and_after_last_detection_at_capped_speed() -> None:
    rules = CoverRules(margin=0.2, motion_margin=0.0, extend=6)
    plan = dict(track_boxes(_track((10, 100.0), (12, 200.0)), rules, 100, 1000, 1000))
    assert min(plan) == 4 and max(plan) == 18
    cap = MAX_SPEED * 40.0  # 50 px per frame measured, capped
    assert plan[18][0] + plan[18][2] / 2 == pytest.approx(220.0 + 6 * cap)
    assert plan[4][0] + plan[4][2] / 2 == pytest.approx(120.0 - 6 * cap)


def test_plan_clips_to_the_frame_and_drops_boxes_outside() -> None:
    rules = CoverRules(margin=0.5, motion_margin=0.0, extend=3)
    plan = frame_plan([_track((0, -30.0))], rules, 2, 640, 360)
    assert set(plan) == {0, 1}
    for boxes in plan.values():
        x, _, w, _ = boxes[0]
        assert x >= 0 and x + w <= 640


def test_plan_hold_stops_at_a_shot_cut() -> None:
    rules = CoverRules(margin=0.0, motion_margin=0.0, extend=5)
    plan = frame_plan([_track((10, 100.0), (12, 100.0))], rules, 100, 1000, 1000, cuts=[8, 14])
    assert sorted(plan) == [8, 9, 10, 11, 12, 13]


def test_plan_covers_a_track_with_reach_that_much_longer() -> None:
    rules = CoverRules(margin=0.0, motion_margin=0.0, extend=5)
    track = _track((30, 100.0))
    assert sorted(dict(track_boxes(track, rules, 100, 1000, 1000))) == list(range(25, 36))
    track.reach = 29  # seen only by a detector that runs every 25 frames (+ a hold of 4)
    assert sorted(dict(track_boxes(track, rules, 100, 1000, 1000))) == list(range(1, 60))


# ---- seed detector -------------------------------------------------------------------------------------
def test_seed_runs_fall_on_scheduled_detections() -> None:
    assert seed_stride(25.0, 1.0, 4) == 24
    assert seed_stride(30.0, 1.0, 4) == 32  # 7.5 strides, rounded
    assert seed_stride(25.0, 0.01, 4) == 4  # never more often than the main detector


def _det(x: float, w: float = 30.0) -> Detection:
    return Detection(bbox=(x, 50.0, w, w), landmarks=np.zeros((5, 2), np.float32), score=0.95)


def test_seed_only_keeps_the_faces_the_main_detector_missed() -> None:
    main = [_det(100.0, 60.0), _det(400.0)]
    seeded = [_det(105.0, 56.0), _det(250.0), _det(402.0)]
    assert [d.bbox[0] for d in seed_only(seeded, main)] == [250.0]
    assert seed_only(seeded, []) == seeded and seed_only([], main) == []


# ---- YuNet's frame shrink ------------------------------------------------------------------------------
def _yunet_input(detector: object, frame: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> tuple[int, int]:
    """The (width, height) of the frame YuNet's network is given for ``frame``."""
    seen: list[tuple[int, int]] = []
    run = detector._run  # type: ignore[attr-defined]

    def spy(image: np.ndarray) -> dict[str, np.ndarray]:
        seen.append((image.shape[1], image.shape[0]))
        return run(image)  # type: ignore[no-any-return]

    monkeypatch.setattr(detector, "_run", spy)
    detector.detect(frame)  # type: ignore[attr-defined]
    assert len(seen) == 1
    return seen[0]


def test_redaction_yunet_shrink_is_its_own_setting_and_leaves_the_live_detector_alone(
    models_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lfr.core.config import load_settings
    from lfr.redact.engine import FaceFinder
    from lfr.vision import load_detector

    frame = np.zeros((1080, 1920, 3), np.uint8)

    def sizes(**redact: object) -> tuple[tuple[int, int], tuple[int, int], int]:
        # The live path's YuNet shrinks its frames too (min_face_px 40 seen at 10 here: a quarter), so
        # the live size shows that neither setting reaches the other detector.
        s = load_settings(
            data_dir=tmp_path,
            models={"dir": models_dir, "detector": "yunet"},
            detector={"yunet": {"reliable_face_px": 10}},
            redact={"detector": "yunet", "seed_detector": None, **redact},
        )
        live = load_detector(s)
        redacting = FaceFinder(s).detector
        return (
            _yunet_input(live, frame, monkeypatch),
            _yunet_input(redacting, frame, monkeypatch),
            s.detector.yunet.reliable_face_px,
        )

    # Redaction's default: faces of redact.min_face_px (20) seen at 20, the whole frame.
    assert sizes() == ((480, 270), (1920, 1080), 10)
    # redact.yunet_reliable_face_px 15: redaction's YuNet runs at 0.75, the live one still at a quarter.
    assert sizes(yunet_reliable_face_px=15) == ((480, 270), (1440, 810), 10)


# ---- masks ---------------------------------------------------------------------------------------------
def _textured(h: int, w: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("style", ["blur", "pixelate", "box"])
def test_masks_remove_detail_inside_and_touch_nothing_outside(style: str) -> None:
    img = _textured(200, 300)
    before = img.copy()
    mask_image(img, [(50.0, 40.0, 120.0, 100.0)], style)  # type: ignore[arg-type]
    inside = img[40:140, 50:170].astype(np.int32)
    assert (
        np.abs(np.diff(inside, axis=1)).mean()
        < np.abs(np.diff(before[40:140, 50:170].astype(np.int32), axis=1)).mean() / 4
    )
    outside = np.ones(img.shape[:2], bool)
    outside[40:140, 50:170] = False
    assert np.array_equal(img[outside], before[outside])
    if style == "pixelate":
        assert len(np.unique(inside[:, :, 0].reshape(-1))) <= PIXEL_BLOCKS * PIXEL_BLOCKS


def test_mask_planes_cover_chroma_at_half_resolution_rounded_outwards() -> None:
    y = np.full((100, 200), 200, np.uint8)
    u = np.full((50, 100), 90, np.uint8)
    v = np.full((50, 100), 90, np.uint8)
    mask_planes([y, u, v], 200, 100, [(11.0, 21.0, 30.0, 20.0)], "box")
    assert (y[21:41, 11:41] == 16).all() and y[20, 11] == 200 and y[21, 41] == 200
    assert (u[10:21, 5:21] == 128).all() and u[9, 5] == 90 and u[10, 21] == 90


# ---- keep rules ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Cand:
    subject_id: str
    clears_threshold: bool


class FakeSource:
    def __init__(self, answers: list[list[Cand]]) -> None:
        self.answers = answers

    def search(self, vectors: np.ndarray, top_k: int) -> list[list[Cand]]:
        assert top_k == 1
        out, self.answers = self.answers[: len(vectors)], self.answers[len(vectors) :]
        return out


def test_subject_kept_only_when_most_samples_agree_above_threshold() -> None:
    t1 = Track(1, [Observation(0, (0, 0, 40, 40), 1.0)], embeddings=[np.zeros(4)] * 3)
    t2 = Track(2, [Observation(0, (90, 0, 40, 40), 1.0)], embeddings=[np.zeros(4)] * 3)
    t3 = Track(3, [Observation(0, (190, 0, 40, 40), 1.0)], embeddings=[np.zeros(4)] * 2)
    src = FakeSource(
        [
            *[[Cand("s1", True)], [Cand("s1", True)], [Cand("x", True)]],  # t1: 2 of 3 agree
            *[[Cand("s1", True)], [Cand("s1", False)], []],  # t2: 1 of 3 clears
            *[[Cand("s2", True)], [Cand("s2", True)]],  # t3: a subject not asked for
        ]
    )
    kept = recognise([t1, t2, t3], src, {"s1"})
    assert [(k.track_id, k.subject_id, k.agreeing) for k in kept] == [(1, "s1", 2)]


def test_keep_track_numbers_must_exist() -> None:
    tracks = [Track(1, [Observation(0, (0, 0, 1, 1), 1.0)]), Track(2, [Observation(0, (5, 0, 1, 1), 1.0)])]
    assert [k.track_id for k in by_number(tracks, [2, 2])] == [2]
    with pytest.raises(ValueError, match="no track numbered 7"):
        by_number(tracks, [7])


# ---- refusals --------------------------------------------------------------------------------------------
def _req(tmp_path: Path, **kw: object) -> RedactRequest:
    src = tmp_path / "in.mp4"
    src.write_bytes(b"x")
    base: dict[str, object] = {
        "source": src,
        "output": tmp_path / "out.mp4",
        "case_ref": "OP-1",
        "reason": "disclosure to defence",
        "actor": "pc-1",
    }
    base.update(kw)
    return RedactRequest(**base)  # type: ignore[arg-type]


def test_refused_without_case_or_reason(tmp_path: Path) -> None:
    with pytest.raises(MissingJustificationError, match="case reference"):
        check_request(_req(tmp_path, case_ref=None))
    with pytest.raises(MissingJustificationError, match="reason"):
        check_request(_req(tmp_path, reason="   "))
    with pytest.raises(MissingJustificationError, match="invalid case"):
        check_request(_req(tmp_path, case_ref="bad case!"))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"style": "smudge"}, "unknown style"),
        ({"output": None}, "give --out"),
        ({"output": "SAME"}, "must not overwrite"),
        ({"output": "x.avi"}, "must end in .mp4"),
        ({"keep_subjects": ["s1"]}, "needs --watchlist"),
    ],
)
def test_bad_requests_are_refused_before_reading(
    tmp_path: Path, change: dict[str, object], message: str
) -> None:
    if change.get("output") == "SAME":
        change = {"output": tmp_path / "in.mp4"}
    elif change.get("output") == "x.avi":
        change = {"output": tmp_path / "x.avi"}
    with pytest.raises(RedactError, match=message):
        check_request(_req(tmp_path, **change))


def test_unknown_input_type_refused(tmp_path: Path) -> None:
    doc = tmp_path / "notes.txt"
    doc.write_text("x")
    with pytest.raises(RedactError, match="not a video"):
        check_request(_req(tmp_path, source=doc))


# ---- command line ----------------------------------------------------------------------------------------
def _cli_app():  # type: ignore[no-untyped-def]
    import typer

    from lfr.redact import cli

    app = typer.Typer()
    app.command("redact")(cli.redact_command)
    app.command("other")(lambda: None)
    return app


def test_cli_refuses_without_case_or_reason_and_writes_nothing(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    src = tmp_path / "clip.mp4"
    src.write_bytes(b"not read")
    out = tmp_path / "out.mp4"
    for args in (["--reason", "disclosure to defence"], ["--case", "OP-1"]):
        res = CliRunner().invoke(_cli_app(), ["redact", str(src), "--out", str(out), *args])
        assert res.exit_code == 2 and "redaction refused" in res.output
    assert not out.exists()


def test_cli_reports_a_bad_request_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from lfr.core.config import load_settings
    from lfr.redact import cli

    monkeypatch.setattr(cli, "cli_settings", lambda: load_settings(data_dir=tmp_path))
    args = ["redact", str(tmp_path / "missing.mp4"), "--out", str(tmp_path / "o.mp4")]
    res = CliRunner().invoke(_cli_app(), [*args, "--case", "OP-1", "--reason", "disclosure to defence"])
    assert res.exit_code == 2 and "does not exist" in res.output and "Traceback" not in res.output


def test_default_redaction_is_the_seeded_mode() -> None:
    """The default pairs YuNet on the schedule with MTCNN once a second (docs/redaction.md, Which to use);
    tests/integration/redact pins the same pair as SEEDED, so the figures there are the default's."""
    from lfr.core.config import RedactSettings

    r = RedactSettings()
    assert (r.detector, r.seed_detector, r.yunet_reliable_face_px) == ("yunet", "mtcnn", 20)
    assert r.seed_interval_s == 1.0 and r.seed_thresholds == (0.6, 0.7, 0.7) and r.min_face_px == 20
