"""Model build: reproducible bytes, cards that verify, and a fast no-op when already built."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from lfr.modelbuild import build_models
from lfr.vision.cards import ModelFileError, find_card, list_cards, sha256_file


def _digests(d: Path) -> dict[str, str]:
    return {str(p.relative_to(d)): sha256_file(p) for p in sorted(d.rglob("*")) if p.is_file()}


def test_two_builds_are_byte_identical(tmp_path: Path, models_dir: Path) -> None:
    other = tmp_path / "again"
    build_models(other)
    first, second = _digests(models_dir), _digests(other)
    assert set(first) == {
        "dlib-resnet-v1/card.yaml",
        "dlib-resnet-v1/model.onnx",
        "mtcnn/card.yaml",
        "mtcnn/onet.onnx",
        "mtcnn/pnet.onnx",
        "mtcnn/rnet.onnx",
        "sface/card.yaml",
        "sface/model.onnx",
        "yunet/card.yaml",
        "yunet/model.onnx",
    }
    assert first == second


def test_cards_describe_the_built_files(models_dir: Path) -> None:
    cards = {c.name: c for c in list_cards(models_dir)}
    assert set(cards) == {"dlib-resnet-v1", "mtcnn", "sface", "yunet"}
    emb, det = cards["dlib-resnet-v1"], cards["mtcnn"]
    for c in cards.values():
        c.verify_files()
    assert (emb.kind, emb.type, emb.dim, emb.metric, emb.threshold) == (
        "embedder",
        "onnx-embedder",
        128,
        "L2",
        0.6,
    )
    assert emb.input.size == (150, 150) and emb.input.channels == "RGB"
    assert set(emb.templates) == {"dlib5", "mtcnn5", "yunet5"}
    assert emb.score_threshold == pytest.approx(0.7)
    assert det.kind == "detector" and det.type == "mtcnn" and det.landmark_scheme == "mtcnn5"
    assert {f.role for f in det.files} == {"pnet", "rnet", "onet"}


def test_rebuild_is_skipped_when_up_to_date(tmp_path: Path) -> None:
    d = tmp_path / "m"
    build_models(d)
    model = d / "dlib-resnet-v1" / "model.onnx"
    before = model.stat().st_mtime_ns
    t = time.perf_counter()
    build_models(d)
    assert time.perf_counter() - t < 5.0
    assert model.stat().st_mtime_ns == before


def test_tampered_file_is_detected_and_rebuilt(tmp_path: Path) -> None:
    d = tmp_path / "m"
    build_models(d)
    onet = d / "mtcnn" / "onet.onnx"
    good = sha256_file(onet)
    onet.write_bytes(onet.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(ModelFileError, match=r"onet\.onnx"):
        find_card(d, "mtcnn").verify_files()
    build_models(d)
    assert sha256_file(onet) == good
