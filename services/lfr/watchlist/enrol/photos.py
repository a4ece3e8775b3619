"""From a photo to what a watchlist row stores: checked, decoded, analysed, with a thumbnail and a reason code
when refused.

Why so strict: a watchlist image that holds two people, no clear face or a blurred one produces an
embedding that matches strangers (false alerts against the wrong person) or nobody. So each image is
checked before it is decoded (byte size, pixel count from the header, so a decompression bomb is never
expanded), then runs the same detector, quality gate, alignment and embedder as live recognition
(``FaceAnalyzer.enrol``), and is refused with a reason code and a message a watchlist admin can act on.

Photos larger than ``ENROL_MAX_SIDE`` are reduced first (INTER_AREA), as in the model's calibration:
enrolment photos of 4000+ px hold faces far larger than the chip, and detection on them is slow.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import threading
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

import cv2
import numpy as np

from lfr.core.config import Settings
from lfr.core.images import decode_image, shrink_to

ENROL_MAX_SIDE = 1600
THUMB_SIDE = 96


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


def decode_checked(data: bytes, max_bytes: int, max_pixels: int) -> np.ndarray:
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
    image = decode_image(data)
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
    return shrink_to(image, max_side)


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


def vision_errors() -> tuple[tuple[type[BaseException], RejectCode], ...]:
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
    image = reduce(decode_checked(data, settings.api.max_upload_bytes, settings.detector.max_image_pixels))
    try:
        if lock is not None:
            with lock:
                face = analyzer.enrol(image)
        else:
            face = analyzer.enrol(image)
    except ValueError as exc:  # every vision refusal is a ValueError subclass
        for cls, code in vision_errors():
            if isinstance(exc, cls):
                raise EnrolmentRejected(code, str(exc)) from None
        raise EnrolmentRejected(RejectCode.INVALID, str(exc)) from None
    embedding = np.asarray(face.embedding, dtype=np.float32).reshape(-1)
    return PreparedImage(
        embedding, make_thumbnail(face.chip), hashlib.sha256(data).hexdigest(), int(face.detection.bbox[2])
    )
