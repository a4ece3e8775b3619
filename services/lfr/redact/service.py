"""One redaction, start to finish: refuse without justification, find faces, decide what stays, write the
output, audit it, and only then hand the file over.

Rules this module enforces:

* no case reference or no reason, no redaction: refused before anything is read or decoded;
* the output is written under a temporary name beside the requested one and renamed only after its audit
  record (action ``evidence.redact``: actor, case, reason, input and output SHA-256, counts, kept track
  numbers and subject ids) is on the hash-chained log; a redaction that cannot be audited leaves no output;
* a failed redaction is audited too (``outcome=failed``) and leaves no partial file;
* logs carry counts and timings only.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from lfr.core.audit import AuditLog
from lfr.core.config import Settings
from lfr.core.ids import new_id
from lfr.core.images import IMAGE_SUFFIXES, read_image
from lfr.core.timeutil import iso, now_ms
from lfr.redact.engine import (
    Analysis,
    FaceFinder,
    Progress,
    RedactError,
    RenderStats,
    redaction_settings,
    render_image,
    render_video,
)
from lfr.redact.keep import CandidateSearch, KeepDecision, by_number, recognise
from lfr.redact.masks import STYLES, Style
from lfr.redact.media import VIDEO_SUFFIXES, probe
from lfr.redact.preview import write_preview
from lfr.redact.report import build_report, sha256_file
from lfr.retro.schemas import CASE_REF_PATTERN

log = logging.getLogger(__name__)

AUDIT_ACTION = "evidence.redact"
MIN_REASON_CHARS = 5


class MissingJustificationError(RedactError):
    """A redaction was asked for without a case reference or a reason: it is refused."""


@dataclass(frozen=True)
class RedactRequest:
    source: Path
    output: Path | None  # None: preview only
    case_ref: str | None
    reason: str | None
    actor: str
    keep_subjects: Sequence[str] = ()
    keep_tracks: Sequence[int] = ()
    watchlists: Sequence[str] = ()
    style: str | None = None
    preview_dir: Path | None = None
    report_path: Path | None = None
    extra_audit: dict[str, str] = field(default_factory=dict)


def check_justification(case_ref: str | None, reason: str | None) -> tuple[str, str]:
    """The case reference (retrospective search's format) and the reason, normalised; refused otherwise."""
    case = (case_ref or "").strip()
    if not case:
        raise MissingJustificationError("redaction refused: a case reference is required (--case)")
    if not re.match(CASE_REF_PATTERN, case):
        raise MissingJustificationError(
            f"redaction refused: invalid case reference {case!r} "
            "(2-64 characters, letters, digits and . _ / -)"
        )
    why = " ".join((reason or "").split())
    if len(why) < MIN_REASON_CHARS:
        raise MissingJustificationError(
            f"redaction refused: a reason of at least {MIN_REASON_CHARS} characters is required (--reason); "
            "it is recorded in the audit log with the case reference"
        )
    return case, why


def source_kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        return "video"
    if suffix in IMAGE_SUFFIXES:
        return "image"
    raise RedactError(f"{path.name}: not a video ({', '.join(sorted(VIDEO_SUFFIXES))}) or image file")


def check_request(req: RedactRequest) -> tuple[str, str, str, Style]:
    """Everything that can be refused without reading the input: returns case, reason, kind, style."""
    case, reason = check_justification(req.case_ref, req.reason)
    if not req.actor:
        raise RedactError("a redaction needs an actor (who is redacting)")
    style = req.style or "blur"
    if style not in STYLES:
        raise RedactError(f"unknown style {style!r}: one of {', '.join(STYLES)}")
    if not req.source.is_file():
        raise RedactError(f"input {req.source.name} does not exist")
    kind = source_kind(req.source)
    if req.output is None and req.preview_dir is None:
        raise RedactError(
            "give --out (the redacted file), --preview DIR (the tracks to choose from), or both"
        )
    if req.output is not None:
        if req.output.resolve() == req.source.resolve():
            raise RedactError("the output must not overwrite the input exhibit")
        want = {".mp4"} if kind == "video" else IMAGE_SUFFIXES
        if req.output.suffix.lower() not in want:
            raise RedactError(f"output for a {kind} must end in {' or '.join(sorted(want))}")
        if not req.output.parent.is_dir():
            raise RedactError(f"output folder {req.output.parent} does not exist")
    if req.keep_subjects and not req.watchlists:
        raise RedactError("--keep-subject needs --watchlist: the watchlist(s) holding those subjects")
    return case, reason, kind, style


def read_still(path: Path) -> np.ndarray:
    img = read_image(path)
    if img is None:
        raise RedactError(f"cannot read {path.name} as an image")
    return img


class Redactor:
    """Long-lived parts of redaction (detector, optional embedder, audit log); one per process."""

    def __init__(
        self,
        settings: Settings,
        audit: AuditLog,
        finder: FaceFinder | None = None,
        candidate_source: CandidateSearch | None = None,
    ) -> None:
        self.settings = settings
        self.audit = audit
        self._finder = finder
        self._recogniser: FaceFinder | None = None
        self._source = candidate_source

    def finder(self, recognise_subjects: bool, thumbnails: bool) -> FaceFinder:
        if self._finder is None:
            self._finder = FaceFinder(self.settings)
        if not recognise_subjects:
            self._finder.want_thumbnails = thumbnails
            return self._finder
        if self._recogniser is None:
            from lfr.vision import FaceAnalyzer, load_detector

            # Its own detector: the plain finder's may skip landmarks (boxes only), which embedding needs.
            # Boxes and scores are the same either way, so both number the same tracks the same way.
            settings = redaction_settings(self.settings)
            detector = load_detector(settings)
            analyzer = FaceAnalyzer(settings, detector=detector)
            self._recogniser = FaceFinder(self.settings, detector=detector, analyzer=analyzer)
        self._recogniser.want_thumbnails = thumbnails
        return self._recogniser

    def _candidates(self, finder: FaceFinder, watchlists: Sequence[str]) -> CandidateSearch:
        if self._source is not None:
            return self._source
        from lfr.retro.search import WatchlistSource

        assert finder.analyzer is not None
        return WatchlistSource(self.settings, finder.analyzer.embedder.card, list(watchlists))

    def _work(
        self, req: RedactRequest, kind: str, style: Style, tmp: Path | None, progress: Progress | None
    ) -> tuple[Analysis, list[KeepDecision], RenderStats | None]:
        finder = self.finder(bool(req.keep_subjects), req.preview_dir is not None)
        image = read_still(req.source) if kind == "image" else None
        analysis = (
            finder.analyse_image(image) if image is not None else finder.analyse_video(req.source, progress)
        )
        try:
            kept = by_number(analysis.tracks, req.keep_tracks)
        except ValueError as exc:
            raise RedactError(str(exc)) from None
        if req.keep_subjects:
            source = self._candidates(finder, req.watchlists)
            chosen = {k.track_id for k in kept}
            kept += [
                k
                for k in recognise(analysis.tracks, source, set(req.keep_subjects))
                if k.track_id not in chosen
            ]
        if req.preview_dir is not None:
            write_preview(req.preview_dir, analysis, req.source.name)
        if tmp is None:
            return analysis, kept, None
        redacted = {t.track_id for t in analysis.tracks} - {k.track_id for k in kept}
        if image is not None:
            stats = render_image(self.settings, image, analysis, redacted, style)
            params = [cv2.IMWRITE_JPEG_QUALITY, 95] if tmp.suffix.lower() in (".jpg", ".jpeg") else []
            if not cv2.imwrite(str(tmp), image, params):
                raise RedactError(f"cannot write {tmp.name}")
        else:
            stats = render_video(self.settings, req.source, tmp, analysis, redacted, style, progress)
        return analysis, kept, stats

    async def run(self, req: RedactRequest, progress: Progress | None = None) -> dict[str, Any]:
        """Redact ``req.source`` into ``req.output``; returns the report (also written beside the output)."""
        case, reason, kind, style = check_request(req)
        rid = new_id()
        t0 = time.perf_counter()
        details: dict[str, str] = {"redaction_id": rid, "source": kind, "style": style, **req.extra_audit}
        tmp = (
            req.output.with_name(f".{req.output.stem}.partial-{rid}{req.output.suffix}")
            if req.output is not None
            else None
        )
        try:
            source_sha = await asyncio.to_thread(sha256_file, req.source)
            details["input_sha256"] = source_sha
            analysis, kept, stats = await asyncio.to_thread(self._work, req, kind, style, tmp, progress)
            out_sha = await asyncio.to_thread(sha256_file, tmp) if tmp is not None else ""
            out_info: dict[str, Any] = {}
            if tmp is not None and kind == "video":
                info = await asyncio.to_thread(probe, tmp)
                out_info = {"frames": info.frames, "duration_s": info.duration_s, "fps": info.fps}
        except Exception as exc:
            if tmp is not None:
                tmp.unlink(missing_ok=True)
            details.update(outcome="failed", error=type(exc).__name__)
            await self.audit.append(req.actor, AUDIT_ACTION, f"case:{case}", reason, details)
            raise
        kept_ids = {k.track_id for k in kept}
        details.update(
            outcome="ok" if tmp is not None else "preview",
            output_sha256=out_sha,
            tracks_found=str(len(analysis.tracks)),
            tracks_kept=",".join(str(k.track_id) for k in kept),
            kept_subjects=",".join(sorted({k.subject_id for k in kept if k.subject_id})),
            tracks_redacted=str(len(analysis.tracks) - len(kept_ids)),
            frames=str(analysis.frames),
        )
        try:
            await self.audit.append(req.actor, AUDIT_ACTION, f"case:{case}", reason, details)
        except Exception:
            if tmp is not None:
                tmp.unlink(missing_ok=True)
            raise
        report: dict[str, Any] = {}
        if tmp is not None and req.output is not None and stats is not None:
            tmp.replace(req.output)
            report = build_report(
                redaction_id=rid,
                case_ref=case,
                actor=req.actor,
                created_at=iso(now_ms()),
                settings=self.settings,
                style=style,
                source=req.source,
                source_sha256=source_sha,
                output=req.output,
                output_sha256=out_sha,
                analysis=analysis,
                render=stats,
                kept=kept,
                elapsed_s=time.perf_counter() - t0,
                output_info=out_info,
            )
            report_path = req.report_path or req.output.with_name(req.output.name + ".report.json")
            report_path.write_text(json.dumps(report, indent=2))
            report["report_path"] = str(report_path)
        else:
            report = {"redaction_id": rid, "case_ref": case, "tracks": len(analysis.tracks)}
        if req.preview_dir is not None:
            report["preview_dir"] = str(req.preview_dir)
        log.info(
            "redaction %s: %d tracks, %d kept, %d frames in %.1f s",
            rid,
            len(analysis.tracks),
            len(kept_ids),
            analysis.frames,
            time.perf_counter() - t0,
        )
        return report


async def redact_file(
    settings: Settings, req: RedactRequest, progress: Progress | None = None
) -> dict[str, Any]:
    """One redaction with its own connections (CLI and scripts); the request is checked before connecting."""
    from lfr.core.bus import make_producer
    from lfr.core.redis_client import make_redis

    check_request(req)
    redis = make_redis(settings)
    producer = make_producer(settings, "redact")
    await producer.start()
    try:
        return await Redactor(settings, AuditLog(settings, producer, redis)).run(req, progress)
    finally:
        await producer.stop()
        await redis.aclose()
