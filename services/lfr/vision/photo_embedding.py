"""One embedding per photo, with every failure and fallback counted: enrolment-style photos, custody
galleries and evaluation sets all go through it.

Why a policy object: photo collections mix full photos (faces in a scene) with tight pre-cropped faces
(LFW: 350x350 crops where the face fills the frame and MTCNN, trained on faces with context, may miss it).
The default ``tight="auto"`` treats a small, roughly square image as a tight crop: it is padded before
detection and, when still no face is found, its centre is taken as the face (a *fallback*, counted). Any
other image is searched as it is and, failing that, on a padded canvas; if that finds nothing the image is
a *failure to enrol*, counted and scored as "never matches", never dropped. The photo's most likely
subject is used, as in enrolment and retrospective search: confident detections before unsure ones, then
the larger (lfr.vision.face_choice; FaceAnalyzer.analyse returns faces in that order), so a large
low-confidence box on a shoulder or a print never stands in for the face. Photos whose longer side exceeds
``max_side`` (default 1600 px) are shrunk first with INTER_AREA: multi-megapixel portraits hold faces far
larger than the chip and only cost detection time. The quality gate is measured but does not exclude a
face: the figures describe the model on the whole set, and the count of faces below the gate is reported
beside them.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from lfr.core import images
from lfr.vision.pipeline import FaceAnalyzer

log = logging.getLogger(__name__)

TightPolicy = Literal["auto", "always", "never"]
# "Tight crop" heuristic for tight="auto": no side above this and an aspect ratio within TIGHT_ASPECT.
TIGHT_MAX_SIDE = 512
TIGHT_ASPECT = (0.75, 1.34)
MAX_SIDE = 1600

Status = Literal["ok", "padded", "fell_back", "no_face", "unreadable", "missing"]
FAILED: frozenset[str] = frozenset({"no_face", "unreadable", "missing"})


@dataclass(frozen=True)
class EmbedOutcome:
    status: Status
    vector: np.ndarray | None = None
    quality_passed: bool = False
    quality_score: float = 0.0  # the best-shot score (lfr.vision.quality): weights a track's fused template

    @property
    def failed(self) -> bool:
        return self.status in FAILED


def looks_tight(image: np.ndarray) -> bool:
    h, w = image.shape[:2]
    return max(h, w) <= TIGHT_MAX_SIDE and TIGHT_ASPECT[0] <= w / max(h, 1) <= TIGHT_ASPECT[1]


def read_image(path: Path, max_side: int | None = MAX_SIDE) -> np.ndarray | None:
    """BGR uint8 image (grey files as 3 equal channels), shrunk to ``max_side``; None if unreadable."""
    return images.read_image(path, max_side)


class PhotoEmbedder:
    """Embeds each distinct path once and keeps the tally of outcomes."""

    def __init__(
        self,
        analyzer: FaceAnalyzer,
        tight: TightPolicy = "auto",
        max_side: int | None = MAX_SIDE,
        *,
        template: bool = False,
    ) -> None:
        """``template=True`` embeds each photo as an enrolment template (a gallery record, an evaluation's
        enrolled photo: ``FaceAnalyzer.as_template``); otherwise as a probe."""
        self.analyzer = analyzer
        self.tight = tight
        self.max_side = max_side
        self.template = template
        self.cache: dict[Path, EmbedOutcome] = {}
        self.counts: Counter[str] = Counter()

    def embed_image(self, image: np.ndarray) -> EmbedOutcome:
        tight = self.tight == "always" or (self.tight == "auto" and looks_tight(image))
        if tight:
            faces = self.analyzer.analyse(image, pad_tight=True)
            if not faces:
                return EmbedOutcome("no_face")
            status: Status = "fell_back" if faces[0].fell_back else "ok"
        else:
            faces = self.analyzer.analyse(image)
            status = "ok"
            if not faces and self.tight == "auto":
                faces = [f for f in self.analyzer.analyse(image, pad_tight=True) if not f.fell_back]
                status = "padded"
            if not faces:
                return EmbedOutcome("no_face")
        face = faces[0]  # the most likely subject (FaceAnalyzer.analyse orders by lfr.vision.face_choice)
        if self.template:
            face = self.analyzer.as_template(face)
        return EmbedOutcome(
            status,
            np.asarray(face.embedding, dtype=np.float32),
            bool(face.quality.passed),
            float(face.quality.score),
        )

    def embed_path(self, path: Path) -> EmbedOutcome:
        p = Path(path)
        hit = self.cache.get(p)
        if hit is not None:
            return hit
        if not p.is_file():
            out = EmbedOutcome("missing")
        else:
            image = read_image(p, self.max_side)
            out = EmbedOutcome("unreadable") if image is None else self.embed_image(image)
        self.cache[p] = out
        self.counts[out.status] += 1
        return out

    def embed_all(self, paths: Iterable[Path], progress: bool = False, desc: str = "embedding") -> None:
        todo = list(dict.fromkeys(Path(p) for p in paths if Path(p) not in self.cache))
        if progress:
            from tqdm import tqdm

            todo_iter: Iterable[Path] = tqdm(todo, desc=desc, unit="img", leave=False)
        else:
            todo_iter = todo
        for p in todo_iter:
            self.embed_path(p)
        log.info("embedded %d images: %s", len(todo), dict(self.counts))

    def summary(self) -> dict[str, int]:
        """Counts over every image embedded so far (cached or not)."""
        return tally(self.cache.values())


def tally(outcomes: Iterable[EmbedOutcome]) -> dict[str, int]:
    """Failures, fallbacks and faces below the gate among ``outcomes`` (counted, never dropped)."""
    items = list(outcomes)
    c: Counter[str] = Counter(o.status for o in items)
    return {
        "images": len(items),
        "embedded": sum(v for k, v in c.items() if k not in FAILED),
        "fell_back": c["fell_back"],
        "padded": c["padded"],
        "failed_to_enrol": sum(c[k] for k in FAILED),
        "no_face": c["no_face"],
        "unreadable": c["unreadable"],
        "missing": c["missing"],
        "below_quality_gate": sum(1 for o in items if o.vector is not None and not o.quality_passed),
    }
