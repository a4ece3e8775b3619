"""Reading evaluation inputs: labelled pair lists, identity folders and group tables.

Why tolerant column names: public pair lists disagree (``img_a,img_b,same`` in this project's sets,
``img1,img2,label`` or ``file_x,file_y,decision`` elsewhere), and an evaluation that silently misreads a
column would publish wrong figures. Unknown layouts fail with a message naming the columns found.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from lfr.core.images import IMAGE_SUFFIXES, list_images
from lfr.core.shared_data import shared_faces_dir

__all__ = ["IMAGE_SUFFIXES", "list_images", "shared_faces_dir"]


A_COLUMNS = (
    "img_a",
    "image_a",
    "img1",
    "image1",
    "img_1",
    "file_a",
    "file_x",
    "path_a",
    "a",
    "left",
    "probe",
)
B_COLUMNS = (
    "img_b",
    "image_b",
    "img2",
    "image2",
    "img_2",
    "file_b",
    "file_y",
    "path_b",
    "b",
    "right",
    "reference",
)
SAME_COLUMNS = ("same", "is_same", "issame", "label", "match", "genuine", "decision", "target", "mated")
FOLD_COLUMNS = ("fold", "split", "set")
TRUE_WORDS = frozenset({"1", "true", "yes", "y", "same", "genuine", "match", "mated", "t"})
FALSE_WORDS = frozenset(
    {"0", "false", "no", "n", "different", "impostor", "nonmatch", "non-match", "f", "-1"}
)

IDENTITY_COLUMNS = ("identity", "id", "subject", "subject_id", "person", "name", "label")
GROUP_COLUMNS = ("group", "demographic", "category", "cohort")


class DatasetError(ValueError):
    """An evaluation input cannot be read; the message names the file and what is wrong."""


@dataclass(frozen=True)
class Pair:
    row: int  # 1-based data row in the CSV (the header is row 0), for reports that must not name people
    a: str
    b: str
    same: bool
    fold: str | None


def _pick(header: list[str], names: Iterable[str]) -> str | None:
    lower = {h.strip().lower(): h for h in header}
    for n in names:
        if n in lower:
            return lower[n]
    return None


def _bool(value: str, path: Path, row: int) -> bool:
    v = value.strip().lower()
    if v in TRUE_WORDS:
        return True
    if v in FALSE_WORDS:
        return False
    raise DatasetError(f"{path}: row {row}: cannot read {value!r} as same/different (use 1/0)")


def read_pairs(path: Path) -> list[Pair]:
    """Pairs from a CSV with a header naming the two images and the label (see the column aliases above)."""
    p = Path(path)
    try:
        with p.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = list(reader.fieldnames or [])
            ca, cb, cs = _pick(header, A_COLUMNS), _pick(header, B_COLUMNS), _pick(header, SAME_COLUMNS)
            cf = _pick(header, FOLD_COLUMNS)
            if not (ca and cb and cs):
                raise DatasetError(
                    f"{p}: cannot find the image and label columns in header {header}; expected e.g. "
                    "img_a,img_b,same[,fold]"
                )
            pairs = []
            for i, rec in enumerate(reader, start=1):
                a, b = (rec.get(ca) or "").strip(), (rec.get(cb) or "").strip()
                if not a or not b:
                    raise DatasetError(f"{p}: row {i}: empty image path")
                fold = ((rec.get(cf) or "").strip() or None) if cf else None
                pairs.append(Pair(i, a, b, _bool(rec.get(cs) or "", p, i), fold))
    except FileNotFoundError:
        raise DatasetError(f"pairs file {p} does not exist") from None
    if not pairs:
        raise DatasetError(f"{p}: no pairs")
    return pairs


def resolve_image(root: Path, name: str, pairs_file: Path | None = None) -> Path:
    """Where an image named in a pairs file lives: under ``root``, else beside the CSV (or its images/)."""
    candidates = [Path(root) / name]
    if pairs_file is not None:
        candidates += [pairs_file.parent / name, pairs_file.parent / "images" / name]
    for c in candidates:
        if c.is_file():
            return c
    return candidates[0]


def identity_folders(root: Path) -> dict[str, list[Path]]:
    """``root/<identity>/<image>`` -> {identity: sorted images}; identities without images are left out."""
    r = Path(root)
    if not r.is_dir():
        raise DatasetError(f"identity root {r} is not a folder")
    out: dict[str, list[Path]] = {}
    for d in sorted(x for x in r.iterdir() if x.is_dir()):
        imgs = list_images(d)
        if imgs:
            out[d.name] = imgs
    if not out:
        raise DatasetError(f"{r}: no identity folders with images (expected ROOT/<identity>/<image>)")
    return out


def read_groups(path: Path) -> dict[str, str]:
    """Identity -> group label from a CSV with an identity column and a group column."""
    p = Path(path)
    try:
        with p.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = list(reader.fieldnames or [])
            ci, cg = _pick(header, IDENTITY_COLUMNS), _pick(header, GROUP_COLUMNS)
            if not (ci and cg):
                raise DatasetError(f"{p}: need an identity column and a group column; header is {header}")
            groups = {}
            for rec in reader:
                ident, grp = (rec.get(ci) or "").strip(), (rec.get(cg) or "").strip()
                if ident:
                    groups[ident] = grp or "unknown"
    except FileNotFoundError:
        raise DatasetError(f"groups file {p} does not exist") from None
    return groups
