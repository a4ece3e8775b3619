"""Model cards: YAML round trip, metric mapping, file verification, lookup errors."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from lfr.vision.cards import (
    CardError,
    ChipTemplate,
    FileRef,
    InputSpec,
    ModelCard,
    ModelFileError,
    find_card,
    list_cards,
    load_card,
)
from lfr.vision.templates import ARCFACE_112


def _card(tmp: Path, metric: str = "L2", threshold: float = 0.6, floor: float = 0.6) -> ModelCard:
    data = b"not really onnx"
    (tmp / "m").mkdir(exist_ok=True)
    (tmp / "m" / "model.onnx").write_bytes(data)
    return ModelCard(
        name="m",
        kind="embedder",
        type="onnx-embedder",
        files=(FileRef(path="model.onnx", sha256=hashlib.sha256(data).hexdigest()),),
        input=InputSpec(size=(112, 112)),
        dim=512,
        templates={"mtcnn5": ChipTemplate(size=112, points=ARCFACE_112)},
        metric=metric,  # type: ignore[arg-type]
        threshold=threshold,
        threshold_floor=floor,
        licence="test",
    )


def test_yaml_round_trip_and_verify(tmp_path: Path) -> None:
    card = _card(tmp_path)
    (tmp_path / "m" / "card.yaml").write_text(card.to_yaml())
    loaded = load_card(tmp_path / "m")
    assert loaded.model_dump() == card.model_dump()
    loaded.verify_files()
    assert loaded.file("model") == (tmp_path / "m" / "model.onnx").resolve()
    assert loaded.model_id.startswith("m:1:")
    assert [c.name for c in list_cards(tmp_path)] == ["m"]
    assert find_card(tmp_path, "m").model_dump() == card.model_dump()


def test_l2_and_cosine_scores(tmp_path: Path) -> None:
    l2 = _card(tmp_path)
    assert l2.to_score(0.0) == 1.0 and l2.to_score(0.6) == pytest.approx(0.7) and l2.to_score(3.0) == 0.0
    assert l2.score_threshold == pytest.approx(0.7)
    assert l2.is_match(0.59) and not l2.is_match(0.61)
    assert l2.is_looser(0.7, than=0.6) and not l2.is_looser(0.5, than=0.6)
    cos = _card(tmp_path, "COSINE", threshold=0.4, floor=0.3)
    assert cos.to_score(-0.2) == 0.0 and cos.to_score(0.45) == pytest.approx(0.45)
    assert cos.score_threshold == pytest.approx(0.4)
    assert cos.is_match(0.41) and not cos.is_match(0.39)
    assert cos.is_looser(0.2, than=0.3)


def test_threshold_looser_than_floor_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="looser"):
        _card(tmp_path, threshold=0.7, floor=0.6)


def test_tampered_and_missing_files(tmp_path: Path) -> None:
    card = _card(tmp_path)
    (tmp_path / "m" / "card.yaml").write_text(card.to_yaml())
    (tmp_path / "m" / "model.onnx").write_bytes(b"swapped")
    with pytest.raises(ModelFileError, match="sha256"):
        load_card(tmp_path / "m").verify_files()
    (tmp_path / "m" / "model.onnx").unlink()
    with pytest.raises(ModelFileError, match="missing"):
        load_card(tmp_path / "m").verify_files()


def test_missing_and_invalid_cards(tmp_path: Path) -> None:
    with pytest.raises(CardError, match="lfr models build"):
        find_card(tmp_path, "dlib-resnet-v1")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "card.yaml").write_text("name: bad\nkind: embedder\n")
    with pytest.raises(CardError, match="invalid"):
        load_card(tmp_path / "bad")
