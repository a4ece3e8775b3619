"""Model cards: the single description of a detector or embedder that the runtime, the threshold governance
and the documentation all read.

Why a card rather than code constants: a force must be able to drop in its own licensed ONNX model (e.g. an
ArcFace-style 112x112, 512-d, cosine model) without writing code, and every deployment must be able to show
which model, which preprocessing, which calibrated threshold and which licence produced an alert. The card
lives next to the model files as ``<models_dir>/<name>/card.yaml``; its ``files`` carry sha256 digests so a
swapped or corrupted file is refused instead of silently producing different scores.

Thresholds are kept in the metric's native units (Euclidean distance for ``L2``, cosine similarity for
``COSINE``; the names are Milvus metric types) because that is what the vector store returns. ``to_score``
maps native values onto one 0..1 "higher is closer" scale for operators and alert ranking.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

CARD_FILE = "card.yaml"


class CardError(ValueError):
    """A card is missing, unreadable or inconsistent; the message names the card file."""


class ModelFileError(CardError):
    """A file a card lists is missing or its sha256 differs from the card's."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FileRef(_Strict):
    path: str = Field(description="relative to the card's directory")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    role: str = Field("model", description="e.g. model, pnet, rnet, onet")


class InputSpec(_Strict):
    size: tuple[int, int] | None = Field(None, description="(width, height); None = any size (detectors)")
    channels: Literal["RGB", "BGR"] = "RGB"
    layout: Literal["NCHW", "NHWC"] = "NCHW"
    dtype: Literal["float32", "uint8"] = "float32"
    name: str = "input"


class Preprocessing(_Strict):
    """``x' = (x - mean) / std`` per channel, in the card's channel order, on 0-255 pixels."""

    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    note: str = ""


class ChipTemplate(_Strict):
    """Where five landmarks should land in the chip, in chip pixel coordinates (x right, y down).

    ``points`` are in the order of the landmark scheme named by the key under which the template is stored
    (``mtcnn5``: image-left eye centre, image-right eye centre, nose tip, image-left and image-right mouth
    corners; ``dlib5``: dlib's 5-point predictor order). ``padding`` documents how the points were derived
    (dlib's get_face_chip padding); alignment itself only needs the points and the size.
    """

    size: int = Field(gt=0)
    padding: float = Field(0.0, ge=0)
    points: tuple[
        tuple[float, float],
        tuple[float, float],
        tuple[float, float],
        tuple[float, float],
        tuple[float, float],
    ]
    source: str = ""


class Calibration(_Strict):
    name: str = Field(description="short key, e.g. lfw_dev_full")
    dataset: str
    pairs: str = ""
    preprocessing: str = ""
    figures: dict[str, float] = Field(default_factory=dict)
    notes: str = ""


class ModelCard(_Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    version: str = "1"
    kind: Literal["detector", "embedder"]
    type: str = Field(description="registry key of the backend, e.g. mtcnn or onnx-embedder")
    description: str = ""
    files: tuple[FileRef, ...] = Field(min_length=1)
    input: InputSpec = Field(default_factory=InputSpec)
    preprocessing: Preprocessing = Field(default_factory=Preprocessing)
    output_name: str | None = None
    dim: int | None = Field(None, gt=0, description="embedding size (embedders)")
    landmark_scheme: str | None = Field(None, description="detectors: the 5-point scheme they emit")
    confident_score: float | None = Field(
        None,
        ge=0,
        le=1,
        description="detectors: the score from which a detection counts as a confident face (the quality "
        "and enrolment gates use it unless quality settings override it); scores differ between detectors",
    )
    templates: dict[str, ChipTemplate] = Field(default_factory=dict, description="embedders: per scheme")
    metric: Literal["L2", "COSINE"] | None = None
    threshold: float | None = Field(None, description="native units: distance (L2) or similarity (COSINE)")
    threshold_floor: float | None = Field(None, description="loosest threshold allowed without a reason")
    calibration: tuple[Calibration, ...] = ()
    licence: str
    source: str = ""
    training_data: str = ""
    caveats: tuple[str, ...] = ()

    _dir: Path | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _embedder_fields(self) -> ModelCard:
        if self.kind == "embedder":
            missing = [
                f for f in ("dim", "metric", "threshold", "threshold_floor") if getattr(self, f) is None
            ]
            if missing:
                raise ValueError(f"embedder cards need {', '.join(missing)}")
            if not self.templates:
                raise ValueError("embedder cards need at least one chip template")
            if self.input.size is None:
                raise ValueError("embedder cards need input.size")
            assert self.threshold is not None and self.threshold_floor is not None
            if self.is_looser(self.threshold, self.threshold_floor):
                raise ValueError("threshold is looser than threshold_floor")
        return self

    # ---- metric helpers -------------------------------------------------------------------------------

    def to_score(self, raw: float) -> float:
        """Map a native metric value to a 0..1 similarity, higher = closer.

        L2: ``clip(1 - d/2, 0, 1)`` with ``d`` the plain Euclidean distance (Milvus returns squared L2:
        take the square root first). COSINE: ``clip(similarity, 0, 1)``.
        """
        if self.metric == "L2":
            return float(np.clip(1.0 - raw / 2.0, 0.0, 1.0))
        if self.metric == "COSINE":
            return float(np.clip(raw, 0.0, 1.0))
        raise CardError(f"card {self.name} has no metric")

    @property
    def score_threshold(self) -> float:
        if self.threshold is None:
            raise CardError(f"card {self.name} has no threshold")
        return self.to_score(self.threshold)

    def is_match(self, raw: float, threshold: float | None = None) -> bool:
        """Whether a native metric value passes ``threshold`` (default: the card's)."""
        t = self.threshold if threshold is None else threshold
        if t is None:
            raise CardError(f"card {self.name} has no threshold")
        return raw <= t if self.metric == "L2" else raw >= t

    def is_looser(self, threshold: float, than: float) -> bool:
        """True when ``threshold`` admits more matches than ``than`` (below a floor needs a reason)."""
        return threshold > than if self.metric == "L2" else threshold < than

    def distance(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Native metric between rows of ``a`` and ``b`` (broadcast); Euclidean or cosine similarity."""
        a = np.asarray(a, dtype=np.float64)
        b = np.asarray(b, dtype=np.float64)
        if self.metric == "L2":
            return np.asarray(np.linalg.norm(a - b, axis=-1))
        na = a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), 1e-12)
        nb = b / np.maximum(np.linalg.norm(b, axis=-1, keepdims=True), 1e-12)
        return np.asarray(np.sum(na * nb, axis=-1))

    # ---- files ----------------------------------------------------------------------------------------

    @property
    def directory(self) -> Path:
        if self._dir is None:
            raise CardError(f"card {self.name} was not loaded from disk")
        return self._dir

    def file(self, role: str = "model") -> Path:
        for f in self.files:
            if f.role == role:
                return self.directory / f.path
        raise CardError(f"card {self.name} lists no file with role {role!r}")

    def verify_files(self) -> None:
        """Check every listed file exists and matches its sha256; raise ModelFileError otherwise."""
        for f in self.files:
            p = self.directory / f.path
            if not p.is_file():
                raise ModelFileError(f"{self.directory / CARD_FILE}: file {f.path} is missing")
            got = sha256_file(p)
            if got != f.sha256:
                raise ModelFileError(
                    f"{self.directory / CARD_FILE}: {f.path} has sha256 {got[:12]}…, "
                    f"card says {f.sha256[:12]}…"
                )

    @property
    def model_id(self) -> str:
        """Stable identifier recorded with every crop and hit: name, version and the first file's digest."""
        return f"{self.name}:{self.version}:{self.files[0].sha256[:12]}"

    def template_for(self, scheme: str) -> ChipTemplate:
        """The chip template for a detector's landmark scheme; CardError naming the ones the card has."""
        template = self.templates.get(scheme)
        if template is None:
            raise CardError(
                f"embedder {self.name} has no chip template for landmark scheme {scheme!r} "
                f"(card lists {sorted(self.templates)})"
            )
        return template

    def calibration_for(self, name: str) -> Calibration:
        for c in self.calibration:
            if c.name == name:
                return c
        raise CardError(f"card {self.name} has no calibration named {name!r}")

    def to_yaml(self) -> str:
        data = self.model_dump(mode="json", exclude_none=True)
        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_card(path: Path) -> ModelCard:
    """Load ``path`` (a card.yaml, or a directory holding one)."""
    p = Path(path)
    if p.is_dir():
        p = p / CARD_FILE
    try:
        data = yaml.safe_load(p.read_text())
    except FileNotFoundError:
        raise CardError(f"model card {p} does not exist") from None
    except (OSError, yaml.YAMLError) as exc:
        raise CardError(f"model card {p} is unreadable: {exc}") from exc
    if not isinstance(data, dict):
        raise CardError(f"model card {p} must hold a mapping")
    try:
        card = ModelCard.model_validate(data)
    except ValidationError as exc:
        errs = "; ".join(f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise CardError(f"model card {p} is invalid: {errs}") from None
    card._dir = p.parent.resolve()
    return card


def list_cards(models_dir: Path) -> list[ModelCard]:
    """Every readable card under ``models_dir`` (one level deep), sorted by name; bad cards raise."""
    d = Path(models_dir)
    if not d.is_dir():
        return []
    return sorted((load_card(c) for c in d.glob(f"*/{CARD_FILE}")), key=lambda c: c.name)


def find_card(models_dir: Path, name: str) -> ModelCard:
    """The card called ``name`` in ``models_dir``; CardError telling the user how to build it if absent."""
    d = Path(models_dir)
    direct = d / name / CARD_FILE
    if direct.is_file():
        card = load_card(direct)
        if card.name == name:
            return card
    for card in list_cards(d):
        if card.name == name:
            return card
    raise CardError(
        f"no model card named {name!r} in {d}: run `lfr models build` to build the default models, "
        "or put your own model and card.yaml in a folder there"
    )
