"""Enrolment: from a photo to a watchlist entry, one image at a time or in bulk, every change audited.

Why so strict: a watchlist image that holds two people, no clear face or a blurred one produces an
embedding that matches strangers (false alerts against the wrong person) or nobody. So each image is
checked before it is decoded (byte size, pixel count from the header, so a decompression bomb is never
expanded), then runs the same detector, quality gate, alignment and embedder as live recognition
(``FaceAnalyzer.enrol``), and is refused with a reason code and a message a watchlist admin can act on.

Photos larger than ``ENROL_MAX_SIDE`` are reduced first (INTER_AREA), as in the model's calibration:
enrolment photos of 4000+ px hold faces far larger than the chip, and detection on them is slow.

Audit records hold ids and counts only: never display names, images or embeddings; the same goes for
INFO logs. A folder import derives subject ids from the folder names by hashing, because folder names are
usually people's names.
"""

from __future__ import annotations

import asyncio
import base64
import csv
import hashlib
import logging
import struct
import sys
import threading
from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
from pydantic import ValidationError
from tqdm import tqdm

from lfr.core.audit import AuditLog
from lfr.core.config import Settings
from lfr.core.ids import derive_id
from lfr.watchlist.store import SubjectMeta, SubjectRecord, WatchlistStore
from lfr.watchlist.types import parse_image_date, parse_when

log = logging.getLogger(__name__)

ENROL_MAX_SIDE = 1600
THUMB_SIDE = 96
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
CSV_COLUMNS = ("subject_id", "display_name", "image_path", "category", "source", "image_date", "expires_at")
CSV_REQUIRED = ("subject_id", "image_path")


class RejectCode(StrEnum):
    NO_FACE = "no_face"
    SEVERAL_FACES = "several_faces"
    POOR_QUALITY = "poor_quality"
    UNREADABLE = "unreadable"
    OVERSIZED = "oversized"
    INVALID = "invalid"


class EnrolmentRejected(ValueError):
    """An image or its details cannot be enrolled; ``code`` is machine-readable, the message says why."""

    def __init__(self, code: RejectCode, message: str) -> None:
        super().__init__(message)
        self.code = code


class FaceEnroller(Protocol):
    """What enrolment needs from vision (lfr.vision.FaceAnalyzer satisfies it)."""

    def enrol(self, image_bgr: np.ndarray) -> Any: ...


# ---- image checks -----------------------------------------------------------------------------------------


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG, JPEG, GIF or BMP header without decoding; None if not recognised."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        w, h = struct.unpack(">II", data[16:24])
        return int(w), int(h)
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        w, h = struct.unpack("<HH", data[6:10])
        return int(w), int(h)
    if data[:2] == b"BM" and len(data) >= 26:
        w, h = struct.unpack("<ii", data[18:26])
        return abs(int(w)), abs(int(h))
    if data[:2] == b"\xff\xd8":
        i = 2
        while i + 9 < len(data):
            if data[i] != 0xFF:
                i += 1
                continue
            marker = data[i + 1]
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
                i += 1 if marker == 0xFF else 2
                continue
            (length,) = struct.unpack(">H", data[i + 2 : i + 4])
            if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
                h, w = struct.unpack(">HH", data[i + 5 : i + 9])
                return int(w), int(h)
            i += 2 + length
    return None


def decode_image(data: bytes, max_bytes: int, max_pixels: int) -> np.ndarray:
    """Bytes -> BGR uint8 image, refusing oversized or unreadable input before it costs memory."""
    if len(data) == 0:
        raise EnrolmentRejected(RejectCode.UNREADABLE, "the image file is empty")
    if len(data) > max_bytes:
        raise EnrolmentRejected(
            RejectCode.OVERSIZED,
            f"the image is {len(data):,} bytes; the limit is {max_bytes:,} (api.max_upload_bytes)",
        )
    size = image_size(data)
    if size is not None and size[0] * size[1] > max_pixels:
        raise EnrolmentRejected(
            RejectCode.OVERSIZED,
            f"the image is {size[0]}x{size[1]} pixels; the limit is "
            f"{max_pixels:,} pixels (detector.max_image_pixels)",
        )
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        raise EnrolmentRejected(
            RejectCode.UNREADABLE,
            "the file is not a readable image: use a JPEG, PNG, BMP, WebP or TIFF photo",
        )
    h, w = image.shape[:2]
    if h * w > max_pixels:
        raise EnrolmentRejected(
            RejectCode.OVERSIZED, f"the image is {w}x{h} pixels; the limit is {max_pixels:,} pixels"
        )
    return image


def reduce(image: np.ndarray, max_side: int = ENROL_MAX_SIDE) -> np.ndarray:
    h, w = image.shape[:2]
    if max(h, w) <= max_side:
        return image
    f = max_side / max(h, w)
    return cv2.resize(image, (round(w * f), round(h * f)), interpolation=cv2.INTER_AREA)


def make_thumbnail(chip: np.ndarray, side: int = THUMB_SIDE, max_chars: int = 16_000) -> str:
    """A small base64 JPEG of the aligned face chip for the console (48-96 px, shrunk until it fits)."""
    for s, q in ((side, 85), (side, 70), (72, 70), (48, 70)):
        small = cv2.resize(chip, (s, s), interpolation=cv2.INTER_AREA)
        ok, buf = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, q])
        if ok:
            text = base64.b64encode(buf.tobytes()).decode("ascii")
            if len(text) <= max_chars:
                return text
    return ""


@dataclass(frozen=True)
class PreparedImage:
    """A successful enrolment analysis; the embedding goes to Milvus and nowhere else."""

    embedding: np.ndarray
    thumbnail: str
    image_sha256: str
    face_px: int


def _vision_errors() -> tuple[tuple[type[BaseException], RejectCode], ...]:
    from lfr.vision import ImageTooLargeError, MultipleFacesError, NoFaceError, PoorQualityError
    from lfr.vision.detectors import BadImageError

    return (
        (NoFaceError, RejectCode.NO_FACE),
        (MultipleFacesError, RejectCode.SEVERAL_FACES),
        (PoorQualityError, RejectCode.POOR_QUALITY),
        (ImageTooLargeError, RejectCode.OVERSIZED),
        (BadImageError, RejectCode.UNREADABLE),
    )


def prepare(
    analyzer: FaceEnroller, data: bytes, settings: Settings, lock: threading.Lock | None = None
) -> PreparedImage:
    """Decode, check and analyse one enrolment photo (CPU-bound: run it in a worker thread)."""
    image = reduce(decode_image(data, settings.api.max_upload_bytes, settings.detector.max_image_pixels))
    try:
        if lock is not None:
            with lock:
                face = analyzer.enrol(image)
        else:
            face = analyzer.enrol(image)
    except ValueError as exc:  # every vision refusal is a ValueError subclass
        for cls, code in _vision_errors():
            if isinstance(exc, cls):
                raise EnrolmentRejected(code, str(exc)) from None
        raise EnrolmentRejected(RejectCode.INVALID, str(exc)) from None
    embedding = np.asarray(face.embedding, dtype=np.float32).reshape(-1)
    return PreparedImage(
        embedding, make_thumbnail(face.chip), hashlib.sha256(data).hexdigest(), int(face.detection.bbox[2])
    )


# ---- bulk sources -----------------------------------------------------------------------------------------


@dataclass
class ImportItem:
    """One image to enrol in a bulk import; ``error`` set when its row or folder was unusable."""

    ref: str  # the image path relative to the import source: shown in the summary, never audited
    image_path: Path | None
    meta: SubjectMeta | None
    error: str = ""


@dataclass
class Rejection:
    ref: str
    subject_id: str
    code: str
    reason: str


@dataclass
class ImportSummary:
    total: int = 0
    accepted: int = 0
    subjects: int = 0
    rejected: list[Rejection] = field(default_factory=list)

    def by_code(self) -> dict[str, int]:
        return dict(Counter(r.code for r in self.rejected))

    def as_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "accepted": self.accepted,
            "subjects": self.subjects,
            "rejected": len(self.rejected),
            "rejected_by_reason": self.by_code(),
            "rejections": [r.__dict__ for r in self.rejected],
        }


def folder_subject_id(watchlist_id: str, folder_name: str) -> str:
    """A stable id that does not spell out the person's name (folder names usually do)."""
    return "s-" + derive_id("watchlist-folder", watchlist_id, folder_name)[:16]


def read_folder(root: Path, watchlist_id: str, defaults: dict[str, Any]) -> list[ImportItem]:
    """One sub-folder per subject (its name becomes the display name); images directly in root are refused."""
    items: list[ImportItem] = []
    for entry in sorted(root.iterdir()):
        if entry.is_file() and entry.suffix.lower() in IMAGE_SUFFIXES:
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
        images = sorted(p for p in entry.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
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


# ---- the enroller -----------------------------------------------------------------------------------------


class Enroller:
    """Enrols photos into a WatchlistStore and writes an audit record for every change."""

    def __init__(
        self, settings: Settings, store: WatchlistStore, audit: AuditLog, analyzer: FaceEnroller | None = None
    ) -> None:
        self.settings = settings
        self.store = store
        self.audit = audit
        self._analyzer = analyzer
        self._build_lock = threading.Lock()
        self._run_lock = threading.Lock()

    @property
    def analyzer(self) -> FaceEnroller:
        """Built on first use: loading the models takes seconds and most API calls never enrol."""
        if self._analyzer is None:
            with self._build_lock:
                if self._analyzer is None:
                    from lfr.vision import FaceAnalyzer

                    self._analyzer = FaceAnalyzer(self.settings)
        return self._analyzer

    async def enrol(
        self, meta: SubjectMeta, image: bytes, actor: str, reason: str = "", via: str = "api"
    ) -> SubjectRecord:
        """Enrol one photo of one subject; raises EnrolmentRejected with a reason code when unusable."""
        if not actor:
            raise ValueError("enrolment needs an actor for the audit log")
        prepared = await asyncio.to_thread(self._prepare, image)
        existed = await asyncio.to_thread(self.store.get_subject, meta.watchlist_id, meta.subject_id)
        pk = await asyncio.to_thread(
            self.store.upsert_subject, meta, prepared.embedding, prepared.image_sha256, prepared.thumbnail
        )
        try:
            await self.audit.append(
                actor,
                "watchlist.enrol",
                f"{meta.watchlist_id}/{meta.subject_id}",
                reason,
                {
                    "watchlist_id": meta.watchlist_id,
                    "subject_id": meta.subject_id,
                    "image_id": pk,
                    "category": str(meta.category),
                    "expires_at": str(meta.expires_at),
                    "via": via,
                },
            )
        except Exception:
            if existed is None or pk not in existed.image_ids:
                await asyncio.to_thread(self.store.delete_image, pk)
            log.error("enrolment of image %s rolled back: audit record could not be written", pk)
            raise
        log.info("enrolled image %s into watchlist %s", pk, meta.watchlist_id)
        record = await asyncio.to_thread(self.store.get_subject, meta.watchlist_id, meta.subject_id)
        if record is None:  # deleted concurrently between the write and this read
            raise LookupError(f"subject {meta.subject_id} vanished during enrolment")
        return record

    def _prepare(self, image: bytes) -> PreparedImage:
        return prepare(self.analyzer, image, self.settings, self._run_lock)

    async def bulk_import(
        self,
        source: Path,
        watchlist_id: str,
        actor: str,
        defaults: dict[str, Any] | None = None,
        reason: str = "",
        progress: bool = True,
    ) -> ImportSummary:
        """Enrol every image of a folder or CSV; one bad image never stops the rest. Summary by reason."""
        items = read_source(source, watchlist_id, defaults)
        summary = ImportSummary(total=len(items))
        subjects: set[str] = set()
        bar = tqdm(items, desc="enrolling", unit="img", disable=not progress, file=sys.stderr, leave=True)
        for item in bar:
            sid = item.meta.subject_id if item.meta else ""
            if item.error or item.meta is None or item.image_path is None:
                summary.rejected.append(
                    Rejection(item.ref, sid, RejectCode.INVALID, item.error or "unusable row")
                )
            else:
                try:
                    data = await asyncio.to_thread(
                        _read_bytes, item.image_path, self.settings.api.max_upload_bytes
                    )
                    await self.enrol(item.meta, data, actor, reason, via="import")
                except EnrolmentRejected as exc:
                    summary.rejected.append(Rejection(item.ref, sid, str(exc.code), str(exc)))
                except OSError as exc:
                    summary.rejected.append(
                        Rejection(
                            item.ref,
                            sid,
                            RejectCode.UNREADABLE,
                            f"cannot read the file: {exc.strerror or exc}",
                        )
                    )
                else:
                    summary.accepted += 1
                    subjects.add(sid)
            bar.set_postfix(accepted=summary.accepted, rejected=len(summary.rejected), refresh=False)
        summary.subjects = len(subjects)
        details = {
            "watchlist_id": watchlist_id,
            "total": summary.total,
            "accepted": summary.accepted,
            "subjects": summary.subjects,
            "rejected": len(summary.rejected),
        }
        details.update({f"rejected_{k}": v for k, v in summary.by_code().items()})
        await self.audit.append(
            actor, "watchlist.import", watchlist_id, reason, {k: str(v) for k, v in details.items()}
        )
        log.info(
            "import into watchlist %s: %d accepted, %d rejected of %d",
            watchlist_id,
            summary.accepted,
            len(summary.rejected),
            summary.total,
        )
        return summary


def _read_bytes(path: Path, max_bytes: int) -> bytes:
    """Read a file, refusing one over ``max_bytes`` without reading it all."""
    size = path.stat().st_size
    if size > max_bytes:
        raise EnrolmentRejected(
            RejectCode.OVERSIZED, f"the image is {size:,} bytes; the limit is {max_bytes:,}"
        )
    return path.read_bytes()


__all__ = [
    "CSV_COLUMNS",
    "Enroller",
    "EnrolmentRejected",
    "ImportItem",
    "ImportSummary",
    "PreparedImage",
    "RejectCode",
    "Rejection",
    "decode_image",
    "image_size",
    "make_thumbnail",
    "prepare",
    "read_source",
]
