"""`lfr watchlist`, `lfr deployment` and `lfr audit`: the operators' command line over the watchlist services.

Each command parses its options, calls the same service method the API calls, and prints either a short
human summary or (``--json``) the API's document. The actor recorded in the audit log is ``$LFR_ACTOR`` or
the OS user. Refusals print the rule that refused and exit 1; bad settings exit 2. This module is the
command line's composition root: it hands the watchlist services the alerting package's purge, which is why
it lives above both packages.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import os
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from lfr.admin.refusals import refusal
from lfr.alerting.purge import make_purge_alerts
from lfr.core.cli import cli_settings
from lfr.core.config import ConfigError
from lfr.watchlist.compose import WatchlistServices, open_services
from lfr.watchlist.deployments import DeploymentSpec
from lfr.watchlist.schemas import DeploymentOut, ImportOut, RejectionOut, SubjectOut, dump
from lfr.watchlist.store import SubjectMeta
from lfr.watchlist.types import Category, now_s, parse_image_date, parse_when

T = TypeVar("T")

watchlist_app = typer.Typer(
    help="Watchlist subjects: enrol, bulk import, list, update, delete, sweep expired.", no_args_is_help=True
)
deployment_app = typer.Typer(
    help="Deployments: create, authorise, start, stop (and purge), threshold.", no_args_is_help=True
)
audit_app = typer.Typer(
    help="The hash-chained audit log: verify it, read the latest records.", no_args_is_help=True
)

JsonOpt = Annotated[bool, typer.Option("--json", help="print the API's JSON document")]
WatchlistOpt = Annotated[str, typer.Option("--watchlist", "-w", help="watchlist id")]
ReasonOpt = Annotated[str, typer.Option("--reason", help="recorded in the audit log")]


def actor() -> str:
    """Who the audit log records: $LFR_ACTOR (a named officer or service account) or the OS user."""
    return os.environ.get("LFR_ACTOR") or getpass.getuser()


def run(op: Callable[[WatchlistServices], Awaitable[T]]) -> T:
    """Run one service operation with fresh services; domain refusals become a message and exit 1."""
    settings = cli_settings()

    async def go() -> T:
        async with open_services(settings, purge=make_purge_alerts) as svc:
            return await op(svc)

    try:
        return asyncio.run(go())
    except ConfigError as exc:
        typer.echo(f"lfr: {exc}", err=True)
        raise typer.Exit(2) from None
    except Exception as exc:
        refused = refusal(exc)
        if refused is None:
            raise
        detail, code = refused
        typer.echo(f"lfr: {detail}{f' [{code}]' if code else ''}", err=True)
        raise typer.Exit(1) from None


def _echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


def _when(text: str) -> datetime:
    t = now_s() if text.strip().lower() == "now" else parse_when(text)
    if t == 0:
        raise typer.BadParameter(f"{text!r} is not a time")
    return datetime.fromtimestamp(t, tz=UTC)


def _subject_line(s: SubjectOut) -> str:
    expires = s.expires_at_iso or "never"
    return (
        f"{s.subject_id:36s} {s.category.value:10s} images={s.images:<3d} expires={expires}  {s.display_name}"
    )


# ---- watchlist ---------------------------------------------------------------------------------------------


@watchlist_app.command("enrol")
def enrol(
    image: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="photo of one face")
    ],
    watchlist: WatchlistOpt,
    subject: Annotated[str, typer.Option("--subject", "-s", help="subject id (a reference, not a name)")],
    name: Annotated[str, typer.Option("--name", help="display name shown to officers")] = "",
    category: Annotated[Category, typer.Option("--category")] = Category.WANTED,
    source: Annotated[str, typer.Option("--source", help="where the photo came from")] = "",
    image_date: Annotated[str, typer.Option("--image-date", help="YYYY-MM-DD the photo was taken")] = "",
    expires: Annotated[
        str, typer.Option("--expires", help="ISO date/datetime, epoch s, or 90d; empty = never")
    ] = "",
    reason: ReasonOpt = "",
    as_json: JsonOpt = False,
) -> None:
    """Enrol one photo of a subject (another photo of an existing subject adds an image)."""
    try:
        meta = SubjectMeta(
            subject_id=subject,
            watchlist_id=watchlist,
            display_name=name,
            category=category,
            source=source,
            image_date=parse_image_date(image_date),
            expires_at=parse_when(expires),
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    data = image.read_bytes()
    rec = run(lambda svc: svc.subjects.enrol(meta, data, actor(), reason))
    out = SubjectOut.of(rec)
    if as_json:
        _echo_json(dump(out))
    else:
        typer.echo(f"enrolled {out.subject_id} on {out.watchlist_id} ({out.images} image(s))")


@watchlist_app.command("import")
def import_(
    source: Annotated[
        Path, typer.Argument(exists=True, help="folder (one sub-folder per subject) or CSV file")
    ],
    watchlist: WatchlistOpt,
    category: Annotated[Category, typer.Option("--category", help="default where the CSV has none")] = (
        Category.WANTED
    ),
    image_source: Annotated[str, typer.Option("--source", help="default source")] = "",
    expires: Annotated[str, typer.Option("--expires", help="default expiry")] = "",
    reason: ReasonOpt = "",
    progress: Annotated[bool, typer.Option("--progress/--no-progress")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Bulk-enrol a folder or a CSV (subject_id, display_name, image_path, category, source, image_date,
    expires_at); prints accepted and rejected counts with each rejection's reason."""
    try:
        defaults: dict[str, Any] = {
            "category": category,
            "source": image_source,
            "expires_at": parse_when(expires),
        }
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    summary = run(
        lambda svc: svc.subjects.import_subjects(source, watchlist, actor(), defaults, reason, progress)
    )
    doc = summary.as_dict()
    out = ImportOut(**{**doc, "rejections": [RejectionOut(**r) for r in doc["rejections"]]})
    if as_json:
        _echo_json(dump(out))
        return
    typer.echo(
        f"{out.accepted} of {out.total} images accepted ({out.subjects} subjects); {out.rejected} rejected"
    )
    for code, n in sorted(out.rejected_by_reason.items()):
        typer.echo(f"  {code}: {n}")
    for r in out.rejections:
        typer.echo(f"  rejected {r.ref}: [{r.code}] {r.reason}")


@watchlist_app.command("list")
def list_(
    watchlist: Annotated[
        str | None, typer.Option("--watchlist", "-w", help="omit to list watchlists")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Subjects of a watchlist, or every watchlist with its subject count."""
    if watchlist is None:
        counts = run(lambda svc: svc.subjects.watchlists())
        if as_json:
            _echo_json([{"watchlist_id": w, "subjects": n} for w, n in counts.items()])
        else:
            for w, n in counts.items():
                typer.echo(f"{w:40s} {n} subjects")
        return
    recs = run(lambda svc: svc.subjects.list_subjects(watchlist))
    subjects = [SubjectOut.of(r) for r in recs]
    if as_json:
        _echo_json(dump(subjects))
    else:
        for s in subjects:
            typer.echo(_subject_line(s))
        typer.echo(f"{len(subjects)} subjects")


@watchlist_app.command("get")
def get(
    subject: Annotated[str, typer.Argument(help="subject id")],
    watchlist: WatchlistOpt,
    as_json: JsonOpt = False,
) -> None:
    """One subject's details (with --json, its thumbnail too)."""
    s = SubjectOut.of(run(lambda svc: svc.subjects.get_subject(watchlist, subject)))
    if as_json:
        _echo_json(dump(s))
        return
    typer.echo(_subject_line(s))
    typer.echo(f"  source={s.source or '-'} image_date={s.image_date or '-'} enrolled={s.enrolled_at_iso}")
    typer.echo(f"  image ids: {', '.join(s.image_ids)}")


@watchlist_app.command("update")
def update(
    subject: Annotated[str, typer.Argument(help="subject id")],
    watchlist: WatchlistOpt,
    name: Annotated[str | None, typer.Option("--name")] = None,
    category: Annotated[Category | None, typer.Option("--category")] = None,
    source: Annotated[str | None, typer.Option("--source")] = None,
    image_date: Annotated[str | None, typer.Option("--image-date")] = None,
    expires: Annotated[str | None, typer.Option("--expires", help="new expiry; 'never' removes it")] = None,
    reason: ReasonOpt = "",
) -> None:
    """Change a subject's details without re-enrolling its photos."""
    try:
        changes: dict[str, Any] = {
            "display_name": name,
            "category": category,
            "source": source,
            "image_date": parse_image_date(image_date) if image_date is not None else None,
            "expires_at": parse_when(expires) if expires is not None else None,
        }
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    rec = run(lambda svc: svc.subjects.update_subject(watchlist, subject, changes, actor(), reason))
    typer.echo(f"updated {rec.subject_id} on {rec.watchlist_id}")


@watchlist_app.command("delete")
def delete(
    subject: Annotated[str, typer.Argument(help="subject id")],
    watchlist: WatchlistOpt,
    reason: ReasonOpt = "",
) -> None:
    """Delete a subject and all its images; searches stop finding it at once."""
    n = run(lambda svc: svc.subjects.delete_subject(watchlist, subject, actor(), reason))
    typer.echo(f"deleted {subject} from {watchlist} ({n} image(s))")


@watchlist_app.command("sweep")
def sweep() -> None:
    """Delete every watchlist entry whose expiry has passed (run it from cron or a CronJob)."""
    n = run(lambda svc: svc.subjects.sweep(actor()))
    typer.echo(f"swept {n} expired image(s)")


# ---- deployment --------------------------------------------------------------------------------------------


def _dep_lines(d: DeploymentOut) -> list[str]:
    threshold = (
        f"{d.effective_threshold:g} ({d.metric}; "
        + ("card default" if d.threshold is None else f"set; card default {d.card_threshold:g}")
        + ")"
    )
    lines = [
        f"{d.deployment_id}  {d.status.value}{'  LIVE' if d.live else ''}  {d.name}",
        f"  location: {d.location}",
        f"  purpose: {d.purpose}",
        f"  window: {d.starts_at.isoformat()} -> {d.ends_at.isoformat()}",
        f"  watchlists: {', '.join(d.watchlist_ids)}   model: {d.embedder_model}",
        f"  threshold: {threshold}" + (f"  reason: {d.threshold_reason}" if d.threshold_reason else ""),
        f"  authorising officer: {d.authorising_officer}"
        + (f" (authorised {d.authorised_at.isoformat()})" if d.authorised_at else " (not authorised)"),
    ]
    if d.expected_rate is not None:
        lines.append(f"  {d.expected_rate.summary}")
    if d.purged_at is not None:
        lines.append(f"  purged {d.purged_at.isoformat()}: {d.purged_alerts} alert(s) deleted")
    return lines


def _print_dep(d: DeploymentOut, as_json: bool) -> None:
    if as_json:
        _echo_json(dump(d))
    else:
        typer.echo("\n".join(_dep_lines(d)))


@deployment_app.command("create")
def create(
    name: Annotated[str, typer.Option("--name")],
    location: Annotated[str, typer.Option("--location")],
    purpose: Annotated[str, typer.Option("--purpose")],
    starts: Annotated[
        str, typer.Option("--starts", help="ISO datetime (UTC if no offset), 'now', or 2h from now")
    ],
    ends: Annotated[str, typer.Option("--ends", help="ISO datetime, or a duration from now such as 8h")],
    officer: Annotated[str, typer.Option("--officer", help="the authorising officer (must authorise it)")],
    watchlist: Annotated[list[str], typer.Option("--watchlist", "-w", help="repeat for several")],
    threshold: Annotated[
        float | None, typer.Option("--threshold", help="native units; default: the card's")
    ] = None,
    threshold_reason: Annotated[str, typer.Option("--threshold-reason")] = "",
    model: Annotated[str | None, typer.Option("--model", help="embedder card; default from settings")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a draft deployment and show the false-alert rate to expect for its watchlists."""
    try:
        spec = DeploymentSpec(
            name=name,
            location=location,
            purpose=purpose,
            starts_at=_when(starts),
            ends_at=_when(ends),
            authorising_officer=officer,
            watchlist_ids=watchlist,
            threshold=threshold,
            threshold_reason=threshold_reason,
            embedder_model=model,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    _print_dep(run(lambda svc: svc.deployments.create_deployment(spec, actor())), as_json)


@deployment_app.command("authorise")
def authorise(
    deployment_id: str, officer: Annotated[str, typer.Option("--officer")], as_json: JsonOpt = False
) -> None:
    """Authorise a draft; only the officer it names can."""
    _print_dep(run(lambda svc: svc.deployments.authorise(deployment_id, officer, actor())), as_json)


@deployment_app.command("start")
def start(deployment_id: str, as_json: JsonOpt = False) -> None:
    """Start an authorised deployment inside its time window."""
    _print_dep(run(lambda svc: svc.deployments.start(deployment_id, actor())), as_json)


@deployment_app.command("stop")
def stop(
    deployment_id: str,
    purge: Annotated[
        bool, typer.Option("--purge", help="also delete its alerts and probe images now")
    ] = False,
    reason: ReasonOpt = "",
    as_json: JsonOpt = False,
) -> None:
    """Stop a deployment; with --purge delete its alert data at once."""
    _print_dep(run(lambda svc: svc.deployments.stop(deployment_id, actor(), purge, reason)), as_json)


@deployment_app.command("threshold")
def threshold(
    deployment_id: str,
    value: Annotated[
        float | None, typer.Option("--threshold", help="native units; omit for the card default")
    ] = None,
    reason: ReasonOpt = "",
    as_json: JsonOpt = False,
) -> None:
    """Change a deployment's threshold (audited; looser than the model's floor needs --reason)."""
    _print_dep(run(lambda svc: svc.deployments.set_threshold(deployment_id, value, reason, actor())), as_json)


@deployment_app.command("list")
def list_deployments(as_json: JsonOpt = False) -> None:
    """Every deployment with its status."""
    deps = run(lambda svc: svc.deployments.list_deployments())
    if as_json:
        _echo_json(dump(deps))
        return
    for d in deps:
        typer.echo(
            f"{d.deployment_id}  {d.status.value:10s}{' LIVE' if d.live else '     '}  "
            f"{d.starts_at.isoformat()} -> {d.ends_at.isoformat()}  {d.name}"
        )
    typer.echo(f"{len(deps)} deployments")


@deployment_app.command("get")
def get_deployment(deployment_id: str, as_json: JsonOpt = False) -> None:
    """One deployment, with the expected false-alert rate for its watchlists now."""
    _print_dep(run(lambda svc: svc.deployments.get_deployment(deployment_id)), as_json)


# ---- audit -------------------------------------------------------------------------------------------------


@audit_app.command("verify")
def verify(as_json: JsonOpt = False) -> None:
    """Recompute the hash chain; exit 1 naming the first bad record when it is broken."""
    report = run(lambda svc: svc.audit_trail.verify_audit())
    if as_json:
        _echo_json(dump(report))
    elif report.ok:
        typer.echo(f"audit chain intact: {report.records} records ({report.scope})")
    else:
        typer.echo(
            f"AUDIT CHAIN BROKEN at record {report.first_bad_seq}: {report.problem} "
            f"({report.records} records read; {report.scope})"
        )
    if not report.ok:
        raise typer.Exit(1)


@audit_app.command("tail")
def tail(
    n: Annotated[int, typer.Option("-n", "--lines", min=1, help="how many records")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """The latest audit records."""
    events = run(lambda svc: svc.audit_trail.audit_events(n))
    if as_json:
        _echo_json(dump(events))
        return
    for e in events:
        details = " ".join(f"{k}={v}" for k, v in sorted(e.details.items()))
        reason = f" reason={e.reason!r}" if e.reason else ""
        typer.echo(f"{e.seq:>6d} {e.time} {e.actor:16s} {e.action:22s} {e.target}{reason} {details}")
