"""Post-training int8 quantisation of an ONNX embedder, calibrated on face chips the force chooses.

Why: the float dlib ResNet costs about 5.5 ms per face at batch 32 on one CPU thread, and embedding is what
bounds an embedding worker. Static int8 quantisation (QDQ graph, per-channel int8 weights, uint8
activations with ranges from calibration chips) runs the same network about 2.4 times faster on x86 CPUs
with AVX-512 VNNI, with LFW dev verification accuracy unchanged (docs/models.md has the figures and the
commands).

Why opt-in rather than the default model:

* the quantised network is a *different model*: its embeddings differ from the float model's (median L2
  0.04 against a 0.6 threshold), so it gets its own card name, model id and watchlist collection, and
  watchlists must be enrolled with it;
* the activation ranges come from the calibration chips, so a force should calibrate on faces like its own
  cameras' (the card records how many chips from how many images, and a digest of the image set);
* GPUs gain nothing from an int8 QDQ graph on the CUDA provider, and CPUs without VNNI gain less.

The card keeps the base model's threshold and templates and drops its calibration figures (they were
measured on the float model): run ``lfr eval verify`` with the new card before deploying it.

Videos are calibration sources too (every ``VIDEO_FRAME_STEP``-th frame): the faces of a camera's own footage
are small and soft, unlike portrait photos, and give the activation ranges live crops produce. ``float_ends``
keeps the first convolution and the last layer in float. For SFace, float ends plus video frames took the
LFW dev TAR loss from 0.72 to 0.36 points, yet open-set FNIR on CFP still grew by half: check a quantised
card on open-set photos, not on LFW alone (docs/models.md, "SFace speed").

Why QDQ and never QOperator: onnxruntime's QOperator writer folds a ``Relu`` into the quantised range of
its input tensor even when another node also reads that tensor, so SFace's ``a*x + (1-a)*Relu(x)`` became
``x`` (cosine to the float model 0.63 median); the QDQ graph keeps each node's own range.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np

from lfr.core.config import Settings
from lfr.core.images import IMAGE_SUFFIXES, list_images, read_image
from lfr.modelbuild.build import write_atomic
from lfr.vision.cards import CARD_FILE, CardError, FileRef, ModelCard, find_card, sha256_file
from lfr.vision.embedders.onnx_embedder import OnnxEmbedder
from lfr.vision.pipeline import FaceAnalyzer

log = logging.getLogger(__name__)

MIN_CHIPS = 16
MAX_SIDE = 1600  # photos are shrunk to this longer side before detection, as in the evaluation commands
CALIBRATION_BATCH = 16
VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm"})
VIDEO_FRAME_STEP = 2


class QuantizeError(CardError):
    """The quantised model cannot be built (wrong base card, too few usable faces)."""


def _is_source(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES or path.suffix.lower() in VIDEO_SUFFIXES


def calibration_images(paths: Sequence[Path]) -> list[Path]:
    """Images found under folders, and image or video files named directly; de-duplicated and sorted for
    reproducibility (a video is used only when named, so a folder of photos keeps meaning its photos)."""
    out: set[Path] = set()
    for p in paths:
        p = Path(p)
        if p.is_dir():
            out.update(q.resolve() for q in list_images(p))
        elif p.is_file() and _is_source(p):
            out.add(p.resolve())
        elif not p.exists():
            raise QuantizeError(f"calibration path {p} does not exist")
    return sorted(out)


def collect_chips(analyzer: FaceAnalyzer, images: Sequence[Path], max_chips: int) -> list[np.ndarray]:
    """Aligned chips of every face that passes the quality gate, in image order, at most ``max_chips``.

    The chips go through the same detector, aligner and quality gate as live crops, so the calibration sees
    what the embedder will see in service.
    """
    chips: list[np.ndarray] = []
    for image in _frames(images):
        side = max(image.shape[:2])
        if side > MAX_SIDE:
            f = MAX_SIDE / side
            image = cv2.resize(image, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
        chips.extend(face.chip for face in analyzer.analyse(image) if face.quality.passed)
        if len(chips) >= max_chips:
            return chips[:max_chips]
    return chips


def _frames(paths: Sequence[Path]) -> Iterator[np.ndarray]:
    """Each photo, and every ``VIDEO_FRAME_STEP``-th frame of each video, in path order."""
    for path in paths:
        if path.suffix.lower() in VIDEO_SUFFIXES:
            cap = cv2.VideoCapture(str(path))
            try:
                index = 0
                while True:
                    ok, frame = cap.read()
                    if not ok:
                        break
                    if index % VIDEO_FRAME_STEP == 0:
                        yield frame
                    index += 1
            finally:
                cap.release()
            continue
        image = read_image(path)
        if image is None:
            log.warning("calibration: %s is not a readable image; skipped", path.name)
            continue
        yield image


def float_end_nodes(model_path: Path) -> list[str]:
    """Names of the first and the last weighted node (Conv, Gemm or MatMul), which ``float_ends`` keeps."""
    import onnx

    weighted = [
        n.name for n in onnx.load(str(model_path)).graph.node if n.op_type in ("Conv", "Gemm", "MatMul")
    ]
    if not weighted or any(not n for n in weighted[:1] + weighted[-1:]):
        raise QuantizeError(f"{model_path}: no named Conv/Gemm/MatMul node to keep in float")
    return sorted({weighted[0], weighted[-1]})


def _batches(embedder_input: str, tensors: list[np.ndarray]) -> Iterator[dict[str, np.ndarray]]:
    for i in range(0, len(tensors), CALIBRATION_BATCH):
        yield {embedder_input: np.concatenate(tensors[i : i + CALIBRATION_BATCH])}


def quantize_model(
    src: Path, dst: Path, input_name: str, inputs: list[np.ndarray], keep_float: Sequence[str] = ()
) -> None:
    """Static QDQ quantisation of ``src`` into ``dst``, MinMax ranges over ``inputs`` (N-first tensors);
    the nodes named in ``keep_float`` stay float."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = _batches(input_name, inputs)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._it, None)

    with tempfile.TemporaryDirectory(prefix="lfr-quantize-") as tmp:
        out = Path(tmp) / "model.onnx"
        # Shape inference and graph folding first, as onnxruntime recommends (symbolic inference needs sympy
        # and adds nothing for fixed-rank image models).
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(src), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(out),
            _Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            # 7-bit weights: without AVX-512 VNNI, onnxruntime's u8 x s8 kernels add pairs of products in
            # 16 bits, which saturates with full-range weights (median embedding error 0.23 on AVX2 vs 0.04).
            reduce_range=True,
            nodes_to_exclude=list(keep_float),
        )
        write_atomic(dst, out.read_bytes())


def _image_set_digest(images: Sequence[Path]) -> str:
    h = hashlib.sha256()
    for p in images:
        h.update(sha256_file(p).encode())
    return h.hexdigest()


def quantize_embedder(
    settings: Settings,
    base: str,
    name: str,
    images: Sequence[Path],
    max_chips: int = 512,
    float_ends: bool = False,
) -> ModelCard:
    """Build ``<models_dir>/<name>/`` (int8 model and card) from the float embedder card ``base``."""
    models_dir = settings.models_dir
    if name == base:
        raise QuantizeError("the quantised card needs a name of its own (it is a different model)")
    base_card = find_card(models_dir, base)
    if base_card.kind != "embedder" or base_card.type != "onnx-embedder":
        raise QuantizeError(f"card {base} is a {base_card.kind}/{base_card.type}: only onnx-embedder cards")
    files = calibration_images(images)
    if not files:
        raise QuantizeError("no calibration images found: give photos or folders of photos with faces")
    float_settings = settings.model_copy(
        update={"models": settings.models.model_copy(update={"embedder": base})}
    )
    analyzer = FaceAnalyzer(float_settings)
    chips = collect_chips(analyzer, files, max_chips)
    if len(chips) < MIN_CHIPS:
        raise QuantizeError(
            f"only {len(chips)} faces passed the quality gate in {len(files)} images; at least {MIN_CHIPS} "
            "are needed for stable activation ranges"
        )
    embedder = analyzer.embedder
    assert isinstance(embedder, OnnxEmbedder)  # the card type was checked above
    tensors = [embedder.prepare([c]) for c in chips]
    out_dir = models_dir / name
    keep = float_end_nodes(base_card.file("model")) if float_ends else []
    quantize_model(base_card.file("model"), out_dir / "model.onnx", embedder.input_name, tensors, keep)
    digest = _image_set_digest(files)
    card = base_card.model_copy(
        update={
            "name": name,
            "version": f"{base_card.version}+int8",
            "description": f"{base_card.name} quantised to int8 (static QDQ, per-channel weights, MinMax "
            f"activation ranges{', first and last layer float' if float_ends else ''}) by "
            "lfr.modelbuild.quantize",
            "files": (FileRef(path="model.onnx", sha256=sha256_file(out_dir / "model.onnx"), role="model"),),
            "calibration": (),
            "source": f"{base_card.model_id}, calibrated on {len(chips)} face chips from {len(files)} files "
            f"(image and video set sha256 {digest[:16]})",
            "caveats": (
                *base_card.caveats,
                "int8 model: its embeddings differ from the float model's, so watchlists must be enrolled "
                "with this card; verify accuracy with `lfr eval verify` before deploying it",
            ),
        }
    )
    write_atomic(out_dir / CARD_FILE, card.to_yaml().encode())
    log.info("quantised %s into %s from %d chips", base, name, len(chips))
    return find_card(models_dir, name)
