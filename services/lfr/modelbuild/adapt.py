"""``lfr models adapt``: a copy of an embedder that ignores the ways one person's own faces differ most.

Why: on the open-set development set most of the default embedder's misses are one person seen from two
poses (docs/accuracy.md, "Where the misses are"): a profile and a frontal photo of one face score lower than
the threshold while strangers do not. The directions along which one subject's embeddings vary most
(within-subject scatter: pose first, then lighting and expression) carry little of who the person is, so
removing the strongest few of them from every embedding (nuisance attribute projection, a fixed linear map
``x -> x (I - U U^T)`` with U the top ``k`` eigenvectors of the within-subject scatter) brings a person's
views closer without moving strangers closer. Measured on CFP with the projection fitted on one half of the
people and searched on the other (docs/accuracy.md has the figures and the commands): FNIR at FPIR 0.01 a
little lower on every split, at no run-time cost (one 128 x 128 matrix product appended to the graph).

Why opt-in and fitted by the force: the projection is learnt from labelled photos (several per subject, as
a custody set holds), and the only labelled faces the project has are its evaluation sets, which a shipped
model must not be fitted on. A force fits it on its own photos; the project measures it by fitting on one
half of CFP's people and searching the other.

The adapted network is a different model (its own card name, model id and watchlist collection): watchlists
must be enrolled with it. The card keeps the base card's templates and threshold and drops its calibration
figures, which were measured on the base model: run ``lfr eval calibrate`` and ``lfr eval identify`` with
the new card on the force's own photos before deploying it.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from lfr.core.config import Settings
from lfr.core.images import list_images, read_image
from lfr.modelbuild.build import write_atomic
from lfr.vision.cards import CARD_FILE, CardError, FileRef, ModelCard, find_card, sha256_file
from lfr.vision.pipeline import FaceAnalyzer

log = logging.getLogger(__name__)

MIN_SUBJECTS = 20
"""Fewer labelled subjects than this cannot tell nuisance from identity reliably."""
MAX_SIDE = 1600  # photos are shrunk to this longer side before detection, as in the evaluation commands
PROJECTED_SUFFIX = "_nap"


class AdaptError(CardError):
    """The adapted model cannot be built (wrong base card, too few labelled subjects or faces)."""


@dataclass(frozen=True)
class LabelledFaces:
    """Unit embeddings of labelled photos, one per photo (its most likely face), with subject labels."""

    vectors: np.ndarray
    subjects: tuple[str, ...]
    photos: int
    without_face: int
    digest: str

    @property
    def subject_count(self) -> int:
        return len(set(self.subjects))


@dataclass(frozen=True)
class Projection:
    """The nuisance directions (dim x k, orthonormal columns) and the within-subject variance they hold."""

    directions: np.ndarray
    explained: float

    def matrix(self) -> np.ndarray:
        """``I - U U^T``: embeddings times this lose their component along the directions."""
        u = self.directions
        return (np.eye(u.shape[0]) - u @ u.T).astype(np.float32)


def subject_photos(root: Path) -> dict[str, list[Path]]:
    """``ROOT/<subject>/<photo>``: subjects with at least two photos (one photo shows no variation)."""
    root = Path(root)
    if not root.is_dir():
        raise AdaptError(f"labelled photo folder {root} does not exist")
    out: dict[str, list[Path]] = {}
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        photos = list_images(sub)
        if len(photos) >= 2:
            out[sub.name] = photos
    return out


def embed_labelled(analyzer: FaceAnalyzer, photos: dict[str, list[Path]]) -> LabelledFaces:
    """Each photo's most likely face embedded as a live probe is (no mirror, every pose: the point is to
    see how a person's faces vary); photos without a detected face are skipped and counted."""
    vectors: list[np.ndarray] = []
    subjects: list[str] = []
    missing = 0
    h = hashlib.sha256()
    for subject, paths in photos.items():
        for path in paths:
            h.update(sha256_file(path).encode())
            image = read_image(path, MAX_SIDE)
            faces = analyzer.analyse(image, pad_tight=True) if image is not None else []
            if not faces or faces[0].fell_back:
                missing += 1
                continue
            v = np.asarray(faces[0].embedding, dtype=np.float64)
            vectors.append(v / max(float(np.linalg.norm(v)), 1e-12))
            subjects.append(subject)
    n = sum(len(p) for p in photos.values())
    dim = int(analyzer.embedder.card.dim or 0)
    matrix = np.stack(vectors) if vectors else np.empty((0, dim))
    return LabelledFaces(matrix, tuple(subjects), n, missing, h.hexdigest())


def fit_projection(faces: LabelledFaces, directions: int) -> Projection:
    """The top ``directions`` eigenvectors of the within-subject scatter (each subject's faces about their
    own mean); subjects left with one face after detection add nothing and are ignored."""
    labels = np.asarray(faces.subjects)
    centred = []
    for s in sorted(set(faces.subjects)):
        x = faces.vectors[labels == s]
        if len(x) >= 2:
            centred.append(x - x.mean(axis=0))
    usable = len(centred)
    if usable < MIN_SUBJECTS:
        raise AdaptError(
            f"only {usable} subjects have two or more photos with a detected face; at least {MIN_SUBJECTS} "
            "are needed (ROOT/<subject>/<photo>, several photos per subject)"
        )
    dim = faces.vectors.shape[1]
    if not 1 <= directions < dim:
        raise AdaptError(f"directions must lie in 1..{dim - 1}, got {directions}")
    c = np.concatenate(centred)
    scatter = c.T @ c
    values, vectors = np.linalg.eigh(scatter)  # ascending
    top = vectors[:, ::-1][:, :directions]
    # A fixed sign per column, so the same photos always give the same bytes (U U^T ignores it anyway).
    top = top * np.where(top[np.abs(top).argmax(axis=0), np.arange(directions)] < 0, -1.0, 1.0)
    explained = float(values[::-1][:directions].sum() / max(values.sum(), 1e-12))
    return Projection(top, explained)


def append_projection(model_path: Path, out_path: Path, output: str, projection: Projection) -> str:
    """Write ``model_path`` with ``output`` flattened and multiplied by the projection; return the new
    output's name (the old output stays an internal tensor, so the weights are untouched)."""
    model = onnx.load(str(model_path))
    graph = model.graph
    outs = [o for o in graph.output if o.name == output]
    if not outs:
        raise AdaptError(f"{model_path.name} has no output {output!r}")
    flat = f"{output}_flat"
    matrix = f"{output}{PROJECTED_SUFFIX}_matrix"
    projected = f"{output}{PROJECTED_SUFFIX}"
    graph.initializer.append(numpy_helper.from_array(projection.matrix(), matrix))
    graph.node.extend(
        [
            helper.make_node("Flatten", [output], [flat], name=flat, axis=1),
            helper.make_node("MatMul", [flat, matrix], [projected], name=projected),
        ]
    )
    dim = projection.directions.shape[0]
    batch = outs[0].type.tensor_type.shape.dim[0] if outs[0].type.tensor_type.shape.dim else None
    batch_dim: str | int = "batch"
    if batch is not None and batch.HasField("dim_value"):
        batch_dim = batch.dim_value
    elif batch is not None and batch.dim_param:
        batch_dim = batch.dim_param
    new_out = helper.make_tensor_value_info(projected, onnx.TensorProto.FLOAT, [batch_dim, dim])
    graph.output.remove(outs[0])
    graph.output.append(new_out)
    onnx.checker.check_model(model)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out_path, model.SerializeToString())
    return projected


def adapt_embedder(
    settings: Settings, base: str, name: str, root: Path, directions: int = 2
) -> tuple[ModelCard, LabelledFaces, Projection]:
    """Build ``<models_dir>/<name>/`` (projected model and card) from the embedder card ``base``, fitted on
    the labelled photos under ``root``."""
    models_dir = settings.models_dir
    if name == base:
        raise AdaptError("the adapted card needs a name of its own (it is a different model)")
    base_card = find_card(models_dir, base)
    if base_card.kind != "embedder" or base_card.type != "onnx-embedder":
        raise AdaptError(f"card {base} is a {base_card.kind}/{base_card.type}: only onnx-embedder cards")
    if base_card.metric != "COSINE":
        raise AdaptError(
            f"card {base} compares by {base_card.metric}: the projection is defined for cosine embedders"
        )
    photos = subject_photos(root)
    if len(photos) < MIN_SUBJECTS:
        raise AdaptError(
            f"{root} holds {len(photos)} subject folders with two or more photos; at least {MIN_SUBJECTS} "
            "are needed (ROOT/<subject>/<photo>)"
        )
    base_settings = settings.model_copy(
        update={"models": settings.models.model_copy(update={"embedder": base, "embed_flip": False})}
    )
    faces = embed_labelled(FaceAnalyzer(base_settings), photos)
    projection = fit_projection(faces, directions)
    out_dir = models_dir / name
    model_file = out_dir / "model.onnx"
    output = base_card.output_name or _first_output(base_card.file("model"))
    new_output = append_projection(base_card.file("model"), model_file, output, projection)
    card = base_card.model_copy(
        update={
            "name": name,
            "version": f"{base_card.version}+nap{directions}",
            "description": f"{base_card.name} with its {directions} strongest within-subject direction(s) "
            f"projected out ({projection.explained:.0%} of the within-subject variance of the fitting "
            "faces) by lfr.modelbuild.adapt",
            "files": (FileRef(path="model.onnx", sha256=sha256_file(model_file), role="model"),),
            "output_name": new_output,
            "calibration": (),
            "source": f"{base_card.model_id}, projection fitted on {len(faces.subjects)} faces of "
            f"{faces.subject_count} subjects (photo set sha256 {faces.digest[:16]})",
            "caveats": (
                *base_card.caveats,
                "adapted model: its embeddings differ from the base model's, so watchlists must be enrolled "
                "with this card; the threshold is the base card's until `lfr eval calibrate` on the "
                "force's own photos sets one",
            ),
        }
    )
    write_atomic(out_dir / CARD_FILE, card.to_yaml().encode())
    log.info("adapted %s into %s (%d directions)", base, name, directions)
    return find_card(models_dir, name), faces, projection


def _first_output(model_path: Path) -> str:
    outputs: Sequence[onnx.ValueInfoProto] = onnx.load(str(model_path), load_external_data=False).graph.output
    if not outputs:
        raise AdaptError(f"{model_path.name} declares no output")
    return outputs[0].name
