"""Redaction of synthetic clips made of real face photos, against the true face boxes of every frame.

Scene (640x360, 25 fps, 60 frames): one face walks in from the left edge and out at the right; another
walks the other way and passes behind it; a small (24 px) face pops in and out mid-clip; one turns its head
(narrowing to a third of its width and back); Obama walks slowly through (the face kept in the keep test).
Every output frame is searched by the checker (tests/integration/redact/checks.py); no redacted face may be
found again, kept faces must be found and still recognised, frame count and timestamps must equal the input.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lfr.core.config import Settings
from lfr.redact.engine import Analysis, FaceFinder, render_video
from lfr.redact.preview import LIST_NAME, SHEET_NAME, write_preview
from lfr.redact.tracks import match_cost
from lfr.vision import FaceAnalyzer, load_detector

from .checks import Checker, check_output
from .conftest import SEEDED_MODES, read, with_redact
from .synthetic import Actor, head_sprite, render_clip, turn, walk

pytestmark = [pytest.mark.integration]

FRAMES = 60
PEOPLE = "facenet_pytorch_samples/test_images"


@pytest.fixture(scope="module")
def clip(
    face_data: Path, redact_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[int, dict[str, tuple[float, float, float, float]]]]:
    det = load_detector(redact_settings)

    def actor(name: str, photo: Path, pose) -> Actor:  # type: ignore[no-untyped-def]
        sprite, face = head_sprite(read(photo), det)
        return Actor(name, sprite, face, pose)

    obama = face_data / "face_recognition_demo/known_people/obama/obama2.jpg"
    actors = [
        actor("rudd", face_data / PEOPLE / "paul_rudd/1.jpg", walk((660, 150), (-11, 0), 44)),
        actor("jolie", face_data / PEOPLE / "angelina_jolie/1.jpg", walk((-30, 140), (12, 0), 50)),
        actor("siegel", face_data / PEOPLE / "kate_siegel/1.jpg", walk((560, 50), (0, 0), 24, 20, 44)),
        actor("whigham", face_data / PEOPLE / "shea_whigham/1.jpg", turn((110, 290), 56, 40)),
        actor("obama", obama, walk((330, 300), (1.5, -1.0), 60)),
    ]
    path = tmp_path_factory.mktemp("synthetic") / "scene.mp4"
    truth = render_clip(path, actors, FRAMES)
    # The scene does what it says: every actor seen; rudd hidden behind jolie for a while; siegel brief.
    seen = {name for faces in truth.values() for name in faces}
    assert seen == {"rudd", "jolie", "siegel", "whigham", "obama"}
    rudd_frames = [i for i in range(FRAMES) if "rudd" in truth.get(i, {})]
    assert len(rudd_frames) < rudd_frames[-1] - rudd_frames[0] + 1, "rudd never passes behind jolie"
    assert min(i for i in range(FRAMES) if "siegel" in truth.get(i, {})) == 20
    return path, truth


@pytest.fixture(scope="module")
def analysis(clip, redact_settings: Settings) -> Analysis:  # type: ignore[no-untyped-def]
    return FaceFinder(redact_settings, want_thumbnails=True).analyse_video(clip[0])


@pytest.mark.parametrize("style", ["blur", "pixelate", "box"])
def test_no_redacted_face_found_on_any_frame(
    style: str,
    clip,
    analysis: Analysis,
    redact_settings: Settings,
    checker: Checker,
    tmp_path: Path,
    record_property,
) -> None:  # type: ignore[no-untyped-def]
    src, truth = clip
    out = tmp_path / f"{style}.mp4"
    stats = render_video(redact_settings, src, out, analysis, {t.track_id for t in analysis.tracks}, style)  # type: ignore[arg-type]
    rep = check_output(checker, src, out, truth=truth)
    record_property(f"synthetic_{style}", json.dumps(rep.as_dict()))
    assert rep.frames_in == rep.frames_out == FRAMES == stats.frames
    assert rep.times_equal
    # The checker can see the faces it is looking for: it finds most true faces on the input ...
    assert rep.real_found_in_input >= 0.8 * rep.real_faces > 0
    # ... and none of them on the output.
    assert rep.leaks == [], rep.as_dict()


@pytest.mark.parametrize("mode", list(SEEDED_MODES))
def test_seeded_mode_no_redacted_face_found_on_any_frame(
    mode: str, clip, redact_settings: Settings, checker: Checker, tmp_path: Path, record_property
) -> None:  # type: ignore[no-untyped-def]
    """YuNet on the schedule with MTCNN once a second beside it: the same check as the default mode."""
    src, truth = clip
    settings = with_redact(redact_settings, SEEDED_MODES[mode])
    seeded = FaceFinder(settings).analyse_video(src)
    assert seeded.seed_every == 24 and seeded.seed_frames >= 3  # frames 0, 24, 48
    out = tmp_path / "seeded.mp4"
    render_video(settings, src, out, seeded, {t.track_id for t in seeded.tracks}, "blur")
    rep = check_output(checker, src, out, truth=truth)
    record_property(f"synthetic_blur_{mode}", json.dumps(rep.as_dict()))
    assert rep.frames_in == rep.frames_out == FRAMES and rep.times_equal
    assert rep.real_found_in_input >= 0.8 * rep.real_faces > 0
    assert rep.leaks == [], rep.as_dict()


def test_kept_track_stays_visible_and_recognisable(
    clip,
    analysis: Analysis,
    redact_settings: Settings,
    checker: Checker,
    analyzer: FaceAnalyzer,
    face_data: Path,
    tmp_path: Path,
) -> None:  # type: ignore[no-untyped-def]
    src, truth = clip
    paths = write_preview(tmp_path / "preview", analysis, src.name)
    assert Path(paths["sheet"]).name == SHEET_NAME and read(Path(paths["sheet"])).shape[0] > 0
    rows = json.loads((tmp_path / "preview" / LIST_NAME).read_text())["tracks"]
    assert [r["track"] for r in rows] == [t.track_id for t in analysis.tracks]
    # Choose the track as an officer would from the preview: the one that starts where Obama is.
    obama_tracks = [
        r["track"]
        for r in rows
        if "obama" in truth.get(r["first_frame"], {})
        and match_cost(tuple(r["first_box"]), truth[r["first_frame"]]["obama"]) < 0.5  # type: ignore[arg-type]
    ]
    assert len(obama_tracks) == 1, rows
    keep = obama_tracks[0]
    out = tmp_path / "kept.mp4"
    redacted = {t.track_id for t in analysis.tracks} - {keep}
    render_video(redact_settings, src, out, analysis, redacted, "blur")
    rep = check_output(checker, src, out, truth=truth, kept=lambda _i, _b, name: name == "obama")
    assert rep.leaks == [], rep.as_dict()
    assert rep.kept_faces > 0 and rep.kept_found >= 0.9 * rep.kept_faces, rep.as_dict()
    # Still recognisable: the kept face on the output matches Obama's own enrolment photo.
    enrol = analyzer.enrol(read(face_data / "face_recognition_demo/known_people/obama/obama.jpg"))
    card = analyzer.embedder.card
    from .checks import frames_with_times

    frames = {i: img for i, (_, img) in enumerate(frames_with_times(out))}
    matched = 0
    samples = rep.kept_seen[:: max(1, len(rep.kept_seen) // 6)]
    for i, _ in samples:
        faces = analyzer.analyse(frames[i])
        dists = [float(card.distance(f.embedding, enrol.embedding)) for f in faces]
        matched += any(card.is_match(d) for d in dists)
    assert matched == len(samples) > 0
    assert np.isfinite(len(samples))
