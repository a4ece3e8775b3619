"""CLI for retrospective search and galleries: ``lfr search`` and ``lfr gallery ...``.

``lfr search`` refuses to run without ``--case`` and ``--reason`` (exit 2, nothing decoded, nothing
connected); with them it audits the search and stores the candidate lists under the case. Its output is
a candidate list per face for an officer to review, never an identification.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from lfr.core.cli import cli_settings

gallery_app = typer.Typer(help="Custody-image galleries for retrospective search.", no_args_is_help=True)


# A gallery import, single-process or distributed, is audited with who and on what authority.
ImportReason = Annotated[
    str | None,
    typer.Option(
        "--reason",
        help="the authority for this import, e.g. the approval or data-sharing reference (required; "
        "recorded in the audit log)",
    ),
]
ImportActor = Annotated[str | None, typer.Option("--actor", help="who is importing (default: login name)")]


def _who_and_why(actor: str | None, reason: str | None, what: str) -> tuple[str, str]:
    """The import's actor and reason, checked before anything loads or connects (exit 2 when refused)."""
    from lfr.retro.import_audit import check_actor, check_reason
    from lfr.retro.import_jobs import ImportJobError

    try:
        return check_actor(actor or getpass.getuser()), check_reason(reason)
    except ImportJobError as exc:
        raise _fail(f"{what} refused: {exc}") from None


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"lfr: {message}", err=True)
    return typer.Exit(code)


def search_command(
    media: Annotated[Path, typer.Argument(help="a still image or a video file")],
    case: Annotated[str | None, typer.Option("--case", help="case reference (required)")] = None,
    reason: Annotated[
        str | None, typer.Option("--reason", help="why this search is needed (required)")
    ] = None,
    watchlist: Annotated[
        list[str] | None, typer.Option("--watchlist", help="watchlist id to search (repeatable)")
    ] = None,
    gallery: Annotated[str | None, typer.Option("--gallery", help="custody gallery name to search")] = None,
    top_k: Annotated[int, typer.Option("--top-k", min=1, max=50, help="candidates per face")] = 5,
    retention_days: Annotated[
        int | None,
        typer.Option(
            "--retention-days",
            min=1,
            help="keep this case's results this many days (default: the case's period, else "
            "retro.case_retention_days; at most retro.max_case_retention_days)",
        ),
    ] = None,
    actor: Annotated[
        str | None, typer.Option("--actor", help="who is searching (default: login name)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
) -> None:
    """Search every face in an image or video against watchlists or a gallery, for a recorded case."""
    from lfr.retro.gallery import GalleryError
    from lfr.retro.schemas import MissingJustificationError, check_case_ref, check_reason
    from lfr.retro.search import RetroSearchError, retrospective_search

    try:
        check_case_ref(case)
        check_reason(reason)
    except MissingJustificationError as exc:
        raise _fail(f"search refused: {exc}") from None
    assert case is not None and reason is not None
    who = actor or getpass.getuser()
    try:
        result = asyncio.run(
            retrospective_search(
                cli_settings(),
                media,
                case,
                reason,
                who,
                watchlist or [],
                gallery,
                top_k,
                retention_days=retention_days,
            )
        )
    except (RetroSearchError, GalleryError, ValueError) as exc:
        raise _fail(str(exc)) from None
    if as_json:
        typer.echo(result.model_dump_json())
        return
    changed = result.retention_changed_from_days
    typer.echo(
        f"search {result.search_id} for case {result.case_ref}: {len(result.faces)} faces "
        f"({result.frames_analysed} frames analysed), threshold {result.threshold:g} {result.metric}, "
        f"kept {result.retention_days} days"
        + (f" (the whole case's period changed from {changed} days)" if changed is not None else "")
    )
    for f in result.faces:
        where = (
            f" frame {f.frame_index} t={f.time_s}s track {f.track_id}" if f.frame_index is not None else ""
        )
        q = "ok" if f.quality_passed else "below quality gate: " + "; ".join(f.quality_reasons)
        typer.echo(f"face {f.face_index}{where} bbox {tuple(round(v) for v in f.bbox)} ({q})")
        for c in f.candidates:
            mark = "clears threshold" if c.clears_threshold else "below threshold"
            typer.echo(f"   {c.rank}. {c.subject_id}  score {c.score:.3f}  distance {c.distance:.4f}  {mark}")
    typer.echo(result.notice)


@gallery_app.command("import")
def gallery_import(
    folder: Annotated[Path, typer.Argument(help="DIR/<record id>/<image> (or flat images: record = stem)")],
    gallery: Annotated[str, typer.Option("--gallery", help="gallery name (a-z, 0-9, _)")],
    resume: Annotated[
        bool, typer.Option("--resume", help="skip items an interrupted import finished")
    ] = False,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 64,
    reason: ImportReason = None,
    actor: ImportActor = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Bulk-import custody images (the most likely face of each) with progress; resumable if interrupted.

    Audited (`gallery.import.local`: who, why, gallery, images, the listing's SHA-256) before any row is
    written, and its end likewise; refused without --reason.
    """
    from lfr.retro.gallery import Gallery, GalleryError
    from lfr.retro.local_import import audited_import
    from lfr.vision import FaceAnalyzer

    who, reason = _who_and_why(actor, reason, "import")
    s = cli_settings()
    try:
        analyzer = FaceAnalyzer(s)
        g = Gallery(s, gallery, analyzer.embedder.card)
        report = audited_import(
            s,
            g,
            folder,
            analyzer,
            actor=who,
            reason=reason,
            resume=resume,
            batch_size=batch_size,
            progress=sys.stderr.isatty(),
        )
    except GalleryError as exc:
        raise _fail(str(exc)) from None
    except KeyboardInterrupt:
        raise _fail("import interrupted: run the same command with --resume to continue", 130) from None
    # Rows not yet indexed are searched through the server's interim index, which can miss them.
    out = {**report.as_dict(), "index_pending_rows": g.index_pending()}
    typer.echo(json.dumps(out) if as_json else "\n".join(f"{k:20s} {v}" for k, v in out.items()))
    if out["index_pending_rows"]:
        typer.echo(
            "the index is still being built: searches may miss rows until `lfr gallery info` shows "
            "pending_index_rows 0",
            err=True,
        )


@gallery_app.command("info")
def gallery_info(
    gallery: Annotated[str, typer.Option("--gallery", help="gallery name")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Rows, model, metric and index of a gallery."""
    from lfr.retro.gallery import Gallery, GalleryError
    from lfr.vision import find_card

    s = cli_settings()
    try:
        info = Gallery(s, gallery, find_card(s.models_dir, s.models.embedder)).info()
    except GalleryError as exc:
        raise _fail(str(exc)) from None
    typer.echo(json.dumps(info) if as_json else "\n".join(f"{k:14s} {v}" for k, v in info.items()))


@gallery_app.command("submit")
def gallery_submit(
    folder: Annotated[
        Path,
        typer.Argument(help="DIR/<record id>/<image> on storage every import worker mounts at this path"),
    ],
    gallery: Annotated[str, typer.Option("--gallery", help="gallery name (a-z, 0-9, _)")],
    reason: ImportReason = None,
    actor: ImportActor = None,
    job: Annotated[
        str | None, typer.Option("--job", help="resume the submission of this job (default: a new job)")
    ] = None,
    wait: Annotated[bool, typer.Option("--wait", help="show progress until the workers finish")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Split a custody-image import into one record per image for `lfr gallery worker` processes.

    Audited (`gallery.import.submit`: who, why, gallery, job, images, the listing's SHA-256) before anything
    is created or published; refused without --reason.
    """
    from lfr.retro.gallery import GalleryError
    from lfr.retro.import_jobs import ImportJobError
    from lfr.retro.import_submit import submit_import
    from lfr.vision import find_card

    who, reason = _who_and_why(actor, reason, "submission")
    s = cli_settings()

    def shown(n: int, total: int) -> None:
        if not as_json:
            typer.echo(f"submitted {n}/{total}", err=True)

    try:
        status = asyncio.run(
            submit_import(
                s,
                folder,
                gallery,
                find_card(s.models_dir, s.models.embedder),
                actor=who,
                reason=reason,
                job_id=job,
                on_chunk=shown,
            )
        )
    except (GalleryError, ImportJobError) as exc:
        raise _fail(str(exc)) from None
    except KeyboardInterrupt:
        raise _fail("submission interrupted: run it again with --job JOB to continue", 130) from None
    job_id = status.spec.job_id
    if not as_json:
        typer.echo(
            f"job {job_id}: {status.spec.total} images for gallery {gallery} "
            f"(listing sha256 {status.spec.manifest_sha256}; audited)"
        )
        typer.echo(f"progress: lfr gallery import-status {job_id}")
    if wait:
        _watch(job_id, as_json)
    elif as_json:
        typer.echo(json.dumps(status.as_dict()))


def _watch(job_id: str, as_json: bool, interval_s: float = 2.0) -> None:
    import time

    from lfr.retro.import_submit import job_status

    s = cli_settings()
    while True:
        st = asyncio.run(job_status(s, job_id))
        d = st.as_dict()
        if not as_json:
            typer.echo(
                f"{d['done']}/{d['total']} done ({d['enrolled']} enrolled, {d['failed']} failed), "
                f"{d['images_per_s'] or '-'} images/s, eta {d['eta_s'] if d['eta_s'] is not None else '-'} s",
                err=True,
            )
        if st.finished:
            typer.echo(json.dumps(d) if as_json else "\n".join(f"{k:20s} {v}" for k, v in d.items()))
            return
        time.sleep(interval_s)


@gallery_app.command("import-status")
def gallery_import_status(
    job: Annotated[str, typer.Argument(help="job id printed by `lfr gallery submit`")],
    watch: Annotated[bool, typer.Option("--watch", help="refresh until the job finishes")] = False,
    failed: Annotated[int, typer.Option("--failed", min=0, help="also list up to N failed items")] = 0,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Progress of a distributed import: counters the workers keep in Redis, rate and time left."""
    from lfr.retro.import_jobs import ImportJobError
    from lfr.retro.import_submit import failed_items, job_status

    s = cli_settings()
    try:
        if watch:
            _watch(job, as_json)
            return
        d = asyncio.run(job_status(s, job)).as_dict()
        if failed:
            d["failed_items"] = asyncio.run(failed_items(s, job, failed))
    except ImportJobError as exc:
        raise _fail(str(exc)) from None
    typer.echo(json.dumps(d) if as_json else "\n".join(f"{k:20s} {v}" for k, v in d.items()))


@gallery_app.command("worker")
def gallery_worker() -> None:
    """Run a gallery import worker: records of lfr.gallery-import.v1 -> embeddings -> gallery rows."""
    from lfr.core.service import run_service
    from lfr.retro.import_worker import main

    run_service(cli_settings(), "gallery-import", main)
