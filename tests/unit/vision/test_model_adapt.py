"""`lfr models adapt` maths and graph surgery on synthetic data (no face models needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper

from lfr.modelbuild.adapt import (
    MIN_SUBJECTS,
    AdaptError,
    LabelledFaces,
    Projection,
    append_projection,
    fit_projection,
    subject_photos,
)


def _faces(subjects: int, per: int, dim: int = 16, seed: int = 0) -> LabelledFaces:
    """Each subject a random identity vector; each photo moves it far along axis 0 (a 'pose') and a
    little elsewhere, so axis 0 is where one subject's faces differ most."""
    rng = np.random.default_rng(seed)
    rows, labels = [], []
    for s in range(subjects):
        identity = rng.normal(size=dim)
        for _ in range(per):
            v = identity + rng.normal(scale=0.05, size=dim)
            v[0] += rng.normal(scale=2.0)
            rows.append(v / np.linalg.norm(v))
            labels.append(f"s{s}")
    return LabelledFaces(np.stack(rows), tuple(labels), len(rows), 0, "x")


def test_the_strongest_within_subject_direction_is_found_and_removed() -> None:
    p = fit_projection(_faces(40, 5), 1)
    u = p.directions[:, 0]
    assert abs(u[0]) > 0.95 and p.explained > 0.5
    m = p.matrix()
    np.testing.assert_allclose(m, m.T, atol=1e-6)
    np.testing.assert_allclose(m @ m, m, atol=1e-5)  # a projection: applying it twice changes nothing
    assert np.linalg.norm(u @ m) < 1e-5  # the direction is gone
    other = np.eye(16)[3]
    np.testing.assert_allclose(other @ m, other, atol=0.1)  # identity directions are (almost) kept


def test_the_fit_is_deterministic_in_sign() -> None:
    a, b = fit_projection(_faces(40, 5), 2), fit_projection(_faces(40, 5), 2)
    np.testing.assert_array_equal(a.directions, b.directions)
    assert (a.directions[np.abs(a.directions).argmax(axis=0), [0, 1]] > 0).all()


def test_too_few_subjects_or_directions_out_of_range_are_refused() -> None:
    with pytest.raises(AdaptError, match=f"at least {MIN_SUBJECTS}"):
        fit_projection(_faces(MIN_SUBJECTS - 1, 4), 1)
    # Subjects left with one face add nothing: 30 subjects of which only 10 have two faces.
    few = _faces(30, 1)
    pairs = _faces(10, 2, seed=1)
    mixed = LabelledFaces(
        np.concatenate([few.vectors, pairs.vectors]),
        few.subjects + tuple(f"p{s}" for s in pairs.subjects),
        50,
        0,
        "x",
    )
    with pytest.raises(AdaptError, match="only 10 subjects"):
        fit_projection(mixed, 1)
    with pytest.raises(AdaptError, match="directions must lie"):
        fit_projection(_faces(30, 3), 16)


def _tiny_model(path: Path, dim: int = 8) -> np.ndarray:
    w = np.random.default_rng(2).normal(size=(4, dim)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["fc1"], name="fc1")],
        "tiny",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor_value_info("fc1", onnx.TensorProto.FLOAT, ["n", dim])],
        [numpy_helper.from_array(w, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return w


def test_the_projection_is_appended_to_the_graph(tmp_path: Path) -> None:
    w = _tiny_model(tmp_path / "m.onnx")
    u = np.zeros((8, 1))
    u[2, 0] = 1.0
    out = append_projection(tmp_path / "m.onnx", tmp_path / "a" / "m.onnx", "fc1", Projection(u, 0.5))
    assert out == "fc1_nap"
    sess = ort.InferenceSession(str(tmp_path / "a" / "m.onnx"), providers=["CPUExecutionProvider"])
    assert [o.name for o in sess.get_outputs()] == ["fc1_nap"]
    x = np.random.default_rng(3).normal(size=(5, 4)).astype(np.float32)  # a batch of 5: dynamic
    (y,) = sess.run(["fc1_nap"], {"x": x})
    expected = x @ w
    expected[:, 2] = 0.0
    np.testing.assert_allclose(y, expected, atol=1e-5)
    with pytest.raises(AdaptError, match="no output 'nope'"):
        append_projection(tmp_path / "m.onnx", tmp_path / "b.onnx", "nope", Projection(u, 0.5))


def test_subjects_need_two_photos_each(tmp_path: Path) -> None:
    for name, n in (("alice", 2), ("bob", 1), ("carol", 3)):
        d = tmp_path / name
        d.mkdir()
        for i in range(n):
            (d / f"{i}.jpg").write_bytes(b"")
    assert sorted(subject_photos(tmp_path)) == ["alice", "carol"]
    with pytest.raises(AdaptError, match="does not exist"):
        subject_photos(tmp_path / "missing")
