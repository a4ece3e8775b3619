"""``lfr redact`` on the shared videos and a multi-face still, through the real stack (audit on the broker,
Redis for the chain head, Milvus for the kept subject's watchlist).

Every checked output frame is searched by the checker (tests/integration/redact/checks.py) for the real
faces of the input frame. The default run checks the Hamilton clip's first 100 frames (with the kept
subject) and the first 30 frames of the 1080p street video; ``slow`` checks every frame of both, for each
style. Figures go to the JUnit report (record_property) and docs/redaction.md.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import pytest

from lfr.core.audit import read_all
from lfr.core.config import Settings
from lfr.redact.engine import FaceFinder, render_video
from lfr.redact.media import probe
from lfr.redact.plan import track_cores
from lfr.redact.report import sha256_file
from lfr.redact.service import AUDIT_ACTION, RedactRequest, redact_file
from lfr.vision import FaceAnalyzer
from lfr.vision.boxes import iou_matrix

from .checks import OVERLAP, Checker, centre_in, check_output, frames_with_times, xyxy
from .conftest import MODES, REDACT, SEEDED_MODES, mode_params, read, with_redact
from .footage import cut_clip

pytestmark = [pytest.mark.integration]

HAMILTON = "face_recognition_demo/video/short_hamilton_clip.mp4"
STREET = "facenet_pytorch_samples/video/video.mp4"
LIN = "face_recognition_demo/enroll/lin_manuel_miranda/lin-manuel-miranda.png"
MULTI_FACE = "facenet_pytorch_samples/multi_face/multiface.jpg"
REASON = "disclosure of CCTV to the defence"


@pytest.fixture(scope="module")
def settings(stack_settings: Settings, models_dir: Path) -> Settings:
    data = stack_settings.model_dump()
    data["redis"]["key_prefix"] = f"lfr-redact-{uuid.uuid4().hex[:8]}:"
    data["models"]["dir"] = models_dir
    data["redact"].update(REDACT)
    return Settings(**data)


@pytest.fixture(scope="module")
def lin_watchlist(settings: Settings, analyzer: FaceAnalyzer, face_data: Path) -> str:
    from lfr.watchlist.store import SubjectMeta, WatchlistStore

    wl = f"wl-redact-{uuid.uuid4().hex[:6]}"
    store = WatchlistStore(settings, analyzer.embedder.card)
    face = analyzer.enrol(read(face_data / LIN))
    store.upsert_subject(SubjectMeta(subject_id="lin", watchlist_id=wl), face.embedding, uuid.uuid4().hex * 2)
    store.close()
    return wl


def subject_boxes(analyzer: FaceAnalyzer, path: Path, frames: int, enrol: np.ndarray) -> dict[int, list]:
    """Frame -> boxes of the faces matching ``enrol``, recognised on the frames themselves."""
    card = analyzer.embedder.card
    out: dict[int, list] = {}
    for i, (_, img) in enumerate(frames_with_times(path)):
        if i >= frames:
            break
        out[i] = [
            f.bbox for f in analyzer.analyse(img) if card.is_match(float(card.distance(f.embedding, enrol)))
        ]
    return out


def near(box, boxes) -> bool:  # type: ignore[no-untyped-def]
    return bool(boxes) and float(iou_matrix(xyxy([box]), xyxy(boxes)).max()) >= OVERLAP


async def _redact(settings: Settings, src: Path, out: Path, **kw) -> dict:  # type: ignore[no-untyped-def]
    req = RedactRequest(source=src, output=out, case_ref="OP-REDACT-1", reason=REASON, actor="dc-7", **kw)
    return await redact_file(settings, req)


@pytest.mark.parametrize("mode", mode_params(MODES))
async def test_hamilton_keep_subject_everyone_else_covered_audited(
    mode: str,
    settings: Settings,
    analyzer: FaceAnalyzer,
    checker: Checker,
    lin_watchlist: str,
    face_data: Path,
    tmp_path: Path,
    record_property,  # type: ignore[no-untyped-def]
) -> None:
    # With YuNet alone the checker found 11 small background faces beside the kept subject in these frames
    # (docs/redaction.md): the seeded mode must cover them as MTCNN alone does.
    settings = with_redact(settings, MODES[mode])
    src = face_data / HAMILTON
    out = tmp_path / "hamilton.mp4"
    report = await _redact(
        settings, src, out, keep_subjects=["lin"], watchlists=[lin_watchlist], preview_dir=tmp_path / "pv"
    )
    # The report ties input and output together by hash and says what was kept.
    assert report["input"]["sha256"] == sha256_file(src) and report["output"]["sha256"] == sha256_file(out)
    written = json.loads(Path(report["report_path"]).read_bytes())  # noqa: ASYNC240 (a small local file)
    assert written["output"]["sha256"] == report["output"]["sha256"]
    kept = report["tracks"]["kept"]
    assert kept and {k["subject_id"] for k in kept} == {"lin"} and all(k["why"] == "subject" for k in kept)
    assert len(report["tracks"]["redacted"]) >= 5 and len(report["shot_cuts"]) >= 2
    assert (tmp_path / "pv" / "tracks.png").is_file()
    # Output keeps resolution, frame count, timing and audio.
    pi, po = probe(src), probe(out)
    assert (po.width, po.height, po.frames, po.audio_codec) == (pi.width, pi.height, pi.frames, "aac")
    assert abs(po.duration_s - pi.duration_s) < 1e-3 and report["audio"] == "copied"
    # Every checked frame: no face found again but those of the kept tracks (their detected boxes,
    # interpolated between detections; the same analysis again, tracks are numbered deterministically);
    # the faces recognised as Lin on the input are those, and are still found and recognised on the output.
    frames = 100
    analysis = FaceFinder(settings).analyse_video(src)
    kept_ids = {k["track_id"] for k in kept}
    kept_plan: dict[int, list] = {}
    for t in analysis.tracks:
        if t.track_id in kept_ids:
            for f, box in track_cores(t):
                kept_plan.setdefault(f, []).append(box)
    rep = check_output(
        checker, src, out, max_frames=frames, kept=lambda i, box, _n: centre_in(box, kept_plan.get(i, []))
    )
    record_property(f"hamilton_keep_lin_{mode}", json.dumps(rep.as_dict()))
    assert rep.frames_in == rep.frames_out == pi.frames and rep.times_equal
    assert rep.real_faces > 50 and rep.leaks == [], rep.as_dict()
    assert rep.kept_faces > 20 and rep.kept_found >= 0.9 * rep.kept_faces, rep.as_dict()
    enrol = analyzer.enrol(read(face_data / LIN)).embedding
    lin_in = subject_boxes(analyzer, src, frames, enrol)
    lin_out = subject_boxes(analyzer, out, frames, enrol)
    lin_faces = [(i, b) for i, boxes in lin_in.items() for b in boxes]
    assert len(lin_faces) > 20 and all(centre_in(b, kept_plan.get(i, [])) for i, b in lin_faces)
    recognised = sum(near(b, lin_out.get(i, [])) for i, b in lin_faces)
    record_property(f"hamilton_lin_recognised_{mode}", f"{recognised}/{len(lin_faces)}")
    assert recognised >= 0.9 * len(lin_faces)
    # Audited with who, case, reason and both hashes.
    events = [e for e in await read_all(settings) if e.action == AUDIT_ACTION]
    ev = next(e for e in events if e.details["redaction_id"] == report["redaction_id"])
    assert (ev.actor, ev.target, ev.reason) == ("dc-7", "case:OP-REDACT-1", REASON)
    assert ev.details["input_sha256"] == report["input"]["sha256"]
    assert ev.details["output_sha256"] == report["output"]["sha256"]
    assert ev.details["kept_subjects"] == "lin" and ev.details["outcome"] == "ok"


# Full-length footage: measured leaks are listed in docs/redaction.md with their causes (a false face the
# schedule never detected on, the detector firing on a mask where a profile face was); more than this
# share of the real faces found again fails.
FULL_LENGTH_LEAK_SHARE = 0.01


def _street_check(
    settings: Settings, checker: Checker, src: Path, tmp_path: Path, style: str, leak_share: float = 0.0
) -> dict[str, object]:
    analysis = FaceFinder(settings).analyse_video(src)
    out = tmp_path / f"street-{style}.mp4"
    render_video(settings, src, out, analysis, {t.track_id for t in analysis.tracks}, style)  # type: ignore[arg-type]
    rep = check_output(checker, src, out)
    assert rep.frames_in == rep.frames_out == analysis.frames and rep.times_equal
    assert rep.real_faces >= 3 * rep.frames_checked, "the street scene has several faces per frame"
    assert len(rep.leaks) <= leak_share * rep.real_faces, rep.as_dict()
    return {**rep.as_dict(), "tracks": len(analysis.tracks), "frames_detected": analysis.detected_frames}


@pytest.mark.parametrize("mode", mode_params(MODES))
def test_street_1080p_first_second_every_face_covered(
    mode: str, redact_settings: Settings, checker: Checker, face_data: Path, tmp_path: Path, record_property
) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "street-30.mp4"
    cut_clip(face_data / STREET, src, 30)
    settings = with_redact(redact_settings, MODES[mode])
    record_property(
        f"street_30_blur_{mode}", json.dumps(_street_check(settings, checker, src, tmp_path, "blur"))
    )


@pytest.mark.slow
@pytest.mark.parametrize("style", ["blur", "pixelate", "box"])
def test_street_1080p_full_every_face_covered(
    style: str,
    redact_settings: Settings,
    checker: Checker,
    face_data: Path,
    tmp_path: Path,
    record_property,
) -> None:  # type: ignore[no-untyped-def]
    figures = _street_check(
        redact_settings, checker, face_data / STREET, tmp_path, style, FULL_LENGTH_LEAK_SHARE
    )
    record_property(f"street_full_{style}", json.dumps(figures))
    print(f"street {style}: {json.dumps(figures)}")


@pytest.mark.slow
@pytest.mark.parametrize("mode", mode_params(SEEDED_MODES))
def test_street_1080p_full_seeded(
    mode: str, redact_settings: Settings, checker: Checker, face_data: Path, tmp_path: Path, record_property
) -> None:  # type: ignore[no-untyped-def]
    """The seeded modes (YuNet, MTCNN once a second) hold the same bound over the whole clip."""
    settings = with_redact(redact_settings, SEEDED_MODES[mode])
    figures = _street_check(settings, checker, face_data / STREET, tmp_path, "blur", FULL_LENGTH_LEAK_SHARE)
    record_property(f"street_full_{mode}", json.dumps(figures))
    print(f"street {mode}: {json.dumps(figures)}")


@pytest.mark.parametrize("mode", list(MODES))
async def test_still_every_face_covered_and_kept_track_visible(
    mode: str, settings: Settings, checker: Checker, face_data: Path, tmp_path: Path
) -> None:
    settings = with_redact(settings, MODES[mode])
    src = face_data / MULTI_FACE
    img = read(src)
    real = [d.bbox for d in checker.reference.detect(img) if d.score >= 0.9]
    assert len(real) >= 4
    out = tmp_path / "all.jpg"
    report = await _redact(settings, src, out)
    assert report["input"]["kind"] == "image" and report["tracks"]["found"] >= len(real)
    found = [d.bbox for d in checker.strong.detect(read(out))]
    assert not [b for b in real if near(b, found)], "a face of the still was found again"
    # Keep face 1 (numbers from the preview run: left to right).
    pv = tmp_path / "pv"
    await redact_file(
        settings,
        RedactRequest(
            source=src, output=None, case_ref="OP-REDACT-1", reason=REASON, actor="dc-7", preview_dir=pv
        ),
    )
    first = json.loads((pv / "tracks.json").read_text())["tracks"][0]
    kept_out = tmp_path / "kept.png"
    await _redact(settings, src, kept_out, keep_tracks=[first["track"]])
    found = [d.bbox for d in checker.strong.detect(read(kept_out))]
    visible = [b for b in real if near(b, found)]
    assert len(visible) == 1 and near(tuple(first["first_box"]), visible)


@pytest.mark.slow
async def test_hamilton_every_frame_checked(
    settings: Settings,
    analyzer: FaceAnalyzer,
    checker: Checker,
    lin_watchlist: str,
    face_data: Path,
    tmp_path: Path,
    record_property,  # type: ignore[no-untyped-def]
) -> None:
    src = face_data / HAMILTON
    for style in ("blur", "pixelate", "box"):
        out = tmp_path / f"h-{style}.mp4"
        await _redact(settings, src, out, style=style)
        rep = check_output(checker, src, out)
        record_property(f"hamilton_full_{style}", json.dumps(rep.as_dict()))
        print(f"hamilton {style}: {json.dumps(rep.as_dict())}")
        assert rep.frames_in == rep.frames_out and rep.times_equal, rep.as_dict()
        assert len(rep.leaks) <= FULL_LENGTH_LEAK_SHARE * rep.real_faces, rep.as_dict()
