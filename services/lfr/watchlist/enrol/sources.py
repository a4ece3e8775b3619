"""What a bulk import enrols: the rows of a CSV or the sub-folders of a folder, each checked before any image
is read.

A folder import derives subject ids from the folder names by hashing, because folder names are usually
people's names. Paths come from files written by others, so none may lead outside the import's folder.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from lfr.core.ids import derive_id
from lfr.core.images import is_image_path
from lfr.watchlist.store import SubjectMeta
from lfr.watchlist.types import parse_image_date, parse_when

CSV_COLUMNS = ("subject_id", "display_name", "image_path", "category", "source", "image_date", "expires_at")
CSV_REQUIRED = ("subject_id", "image_path")


@dataclass
class ImportItem:
    """One image to enrol in a bulk import; ``error`` set when its row or folder was unusable."""

    ref: str  # the image path relative to the import source: shown in the summary, never audited
    image_path: Path | None
    meta: SubjectMeta | None
    error: str = ""


def folder_subject_id(watchlist_id: str, folder_name: str) -> str:
    """A stable id that does not spell out the person's name (folder names usually do)."""
    return "s-" + derive_id("watchlist-folder", watchlist_id, folder_name)[:16]


def read_folder(root: Path, watchlist_id: str, defaults: dict[str, Any]) -> list[ImportItem]:
    """One sub-folder per subject (its name becomes the display name); images directly in root are refused."""
    items: list[ImportItem] = []
    for entry in sorted(root.iterdir()):
        if entry.is_file() and is_image_path(entry):
            items.append(
                ImportItem(
                    entry.name,
                    entry,
                    None,
                    "image is not inside a subject folder (use one sub-folder per subject)",
                )
            )
            continue
        if not entry.is_dir() or entry.name.startswith("."):
            continue
        images = sorted(p for p in entry.iterdir() if p.is_file() and is_image_path(p))
        try:
            meta = SubjectMeta(
                subject_id=folder_subject_id(watchlist_id, entry.name),
                watchlist_id=watchlist_id,
                display_name=entry.name.replace("_", " ")[:256],
                **defaults,
            )
        except ValidationError as exc:
            meta, err = None, _first_error(exc)
        else:
            err = ""
        for img in images:
            outside = "" if _inside(img, root) else "image links outside the import folder"
            items.append(ImportItem(f"{entry.name}/{img.name}", img, meta, err or outside))
    return items


def _inside(path: Path, root: Path) -> bool:
    """Whether ``path``, links and ``..`` resolved, lies inside ``root``: import paths come from files
    written by others and must not reach the rest of the machine."""
    try:
        return path.resolve().is_relative_to(root.resolve())
    except (OSError, RuntimeError, ValueError):  # unreadable, a symlink loop, a NUL byte in the path
        return False


def read_csv(path: Path, watchlist_id: str, defaults: dict[str, Any]) -> list[ImportItem]:
    """Rows of subject_id, display_name, image_path (relative to the CSV), category, source, image_date,
    expires_at; empty cells take the import's defaults."""
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        columns = [c.strip() for c in (reader.fieldnames or [])]
        missing = [c for c in CSV_REQUIRED if c not in columns]
        if missing:
            raise ValueError(
                f"{path.name} lacks column(s) {', '.join(missing)}; expected {', '.join(CSV_COLUMNS)}"
            )
        unknown = [c for c in columns if c not in CSV_COLUMNS]
        if unknown:
            raise ValueError(
                f"{path.name} has unknown column(s) {', '.join(unknown)}; expected {', '.join(CSV_COLUMNS)}"
            )
        items: list[ImportItem] = []
        for line, raw in enumerate(reader, start=2):
            ref = f"{path.name}:{line}"
            if None in raw:  # DictReader puts cells beyond the header under None, as a list
                items.append(
                    ImportItem(ref, None, None, f"row has more cells than the {len(columns)} columns")
                )
                continue
            row = {(k or "").strip(): (v or "").strip() for k, v in raw.items()}
            image_rel = row.get("image_path", "")
            image = (path.parent / image_rel) if image_rel else None
            if image is None:
                items.append(ImportItem(ref, None, None, "image_path is empty"))
                continue
            if not _inside(image, path.parent):
                # A CSV from elsewhere must not make the import read files outside its own folder.
                items.append(ImportItem(ref, None, None, "image_path leaves the CSV's folder"))
                continue
            try:
                fields = {k: row[k] for k in ("category", "display_name", "source") if row.get(k)}
                if row.get("image_date"):
                    fields["image_date"] = parse_image_date(row["image_date"])
                if row.get("expires_at"):
                    fields["expires_at"] = parse_when(row["expires_at"])
                meta = SubjectMeta(
                    subject_id=row.get("subject_id", ""), watchlist_id=watchlist_id, **{**defaults, **fields}
                )
            except ValidationError as exc:
                items.append(ImportItem(ref, image, None, _first_error(exc)))
                continue
            except ValueError as exc:
                items.append(ImportItem(ref, image, None, str(exc)))
                continue
            items.append(ImportItem(ref, image, meta))
    return items


def read_source(source: Path, watchlist_id: str, defaults: dict[str, Any] | None = None) -> list[ImportItem]:
    src = Path(source)
    d = {k: v for k, v in (defaults or {}).items() if v not in (None, "")}
    if src.is_dir():
        return read_folder(src, watchlist_id, d)
    if src.is_file() and src.suffix.lower() == ".csv":
        return read_csv(src, watchlist_id, d)
    raise ValueError(f"{src} is neither a folder (one sub-folder per subject) nor a .csv file")


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    return f"{loc}: {err['msg']}" if loc else str(err["msg"])
