"""Per-track fusion in the embedder: quality-weighted templates, redelivery, memory bounds and expiry."""

from __future__ import annotations

import numpy as np
import pytest

from lfr.embedder.track_fusion import TrackFusion
from lfr.vision.fusion import fuse, normalise, running_fusions


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def unit(*v: float) -> np.ndarray:
    return normalise(np.asarray(v, np.float32))


def test_fuse_is_the_weighted_mean_of_unit_vectors_for_cosine() -> None:
    a, b = np.array([2.0, 0.0], np.float32), np.array([0.0, 5.0], np.float32)
    out = fuse(np.stack([a, b]), np.array([1.0, 3.0]), "COSINE")
    assert np.linalg.norm(out) == pytest.approx(1.0)
    expected = normalise(np.array([0.25, 0.75], np.float32))
    assert np.allclose(out, expected, atol=1e-6)


def test_fuse_keeps_the_distance_scale_for_l2() -> None:
    a, b = np.array([0.2, 0.0], np.float32), np.array([0.0, 0.4], np.float32)
    assert np.allclose(fuse(np.stack([a, b]), None, "L2"), [0.1, 0.2])


def test_weights_are_floored_so_a_poor_crop_still_counts() -> None:
    out = fuse(np.stack([unit(1, 0), unit(0, 1)]), np.array([1.0, 0.0]), "COSINE")
    assert out[1] > 0


def test_running_fusions_row_i_fuses_the_first_i_crops() -> None:
    v = np.stack([unit(1, 0), unit(0, 1), unit(1, 1)])
    rows = running_fusions(v, np.ones(3), "COSINE")
    assert np.allclose(rows[0], v[0]) and np.allclose(rows[2], fuse(v, np.ones(3), "COSINE"))


def test_track_fusion_accumulates_and_ignores_a_redelivered_crop() -> None:
    tf = TrackFusion("COSINE", clock=Clock())
    key = ("dep", "cam", "t1")
    first, n1 = tf.update(key, "c1", unit(1, 0), 1.0)
    assert n1 == 1 and np.allclose(first, unit(1, 0))
    second, n2 = tf.update(key, "c2", unit(0, 1), 1.0)
    assert n2 == 2 and np.allclose(second, unit(1, 1))
    again, n3 = tf.update(key, "c2", unit(0, 1), 1.0)
    assert n3 == 2 and np.allclose(again, second)


def test_tracks_are_separate_and_a_crop_without_track_is_alone() -> None:
    tf = TrackFusion("COSINE", clock=Clock())
    tf.update(("dep", "cam", "a"), "c1", unit(1, 0), 1.0)
    other, n = tf.update(("dep", "cam", "b"), "c2", unit(0, 1), 1.0)
    assert n == 1 and np.allclose(other, unit(0, 1))
    lone, n = tf.update(("dep", "cam", ""), "c3", unit(1, 1), 1.0)
    assert n == 1 and np.allclose(lone, unit(1, 1)) and len(tf) == 2


def test_tracks_expire_after_ttl_and_memory_is_bounded() -> None:
    clock = Clock()
    tf = TrackFusion("COSINE", ttl_s=30.0, max_tracks=3, clock=clock)
    for i in range(3):
        tf.update(("d", "c", f"t{i}"), f"x{i}", unit(1, i), 1.0)
    clock.t = 10.0
    tf.update(("d", "c", "t3"), "x3", unit(1, 0), 1.0)
    assert len(tf) == 3  # the oldest track made room
    clock.t = 100.0
    tf.update(("d", "c", "t9"), "x9", unit(0, 1), 1.0)
    assert len(tf) == 1  # every older track timed out
    _, n = tf.update(("d", "c", "t0"), "x0b", unit(1, 0), 1.0)
    assert n == 1  # t0 was forgotten: it starts again


def test_a_full_track_keeps_its_best_crops() -> None:
    tf = TrackFusion("COSINE", max_crops=2, clock=Clock())
    key = ("d", "c", "t")
    tf.update(key, "low", unit(1, 0), 0.1)
    tf.update(key, "mid", unit(0, 1), 0.5)
    fused, n = tf.update(key, "high", unit(0, 1), 0.9)
    assert n == 2 and np.allclose(fused, unit(0, 1))  # the 0.1 crop was dropped


def test_fallback_crops_leave_the_fusion_once_the_track_has_a_passed_crop() -> None:
    tf = TrackFusion("COSINE", clock=Clock())
    key = ("d", "c", "t")
    # A fallback alone is searched as it is (the track has nothing better) ...
    fused, n = tf.update(key, "fallback", unit(1, 0), 0.6, passed=False)
    assert n == 1 and np.allclose(fused, unit(1, 0))
    # ... and is left out once a face that passed arrives, whatever its weight.
    fused, n = tf.update(key, "good", unit(0, 1), 0.3)
    assert n == 1 and np.allclose(fused, unit(0, 1))
    fused, n = tf.update(key, "later fallback", unit(1, 0), 0.9, passed=False)
    assert n == 1 and np.allclose(fused, unit(0, 1))
    fused, n = tf.update(key, "better", unit(1, 1), 0.3)
    assert n == 2 and np.allclose(fused, fuse(np.stack([unit(0, 1), unit(1, 1)]), np.array([0.3, 0.3])))


def test_a_full_track_drops_a_fallback_before_a_passed_crop() -> None:
    tf = TrackFusion("COSINE", max_crops=2, clock=Clock())
    key = ("d", "c", "t")
    tf.update(key, "fallback", unit(1, 0), 0.9, passed=False)
    tf.update(key, "good", unit(0, 1), 0.2)
    fused, n = tf.update(key, "good too", unit(0, 1), 0.3)
    assert n == 2 and np.allclose(fused, unit(0, 1))
    # The fallback made room: a further weaker fallback does not displace a passed crop.
    fused, n = tf.update(key, "weak fallback", unit(1, 0), 0.95, passed=False)
    assert n == 2 and np.allclose(fused, unit(0, 1))


def test_running_fusions_restart_at_a_crop_that_does_not_continue_the_template() -> None:
    a1, a2, b = unit(1, 0.1), unit(1, -0.1), unit(0, 1)
    vectors = np.stack([a1, a2, b, unit(0.1, 1)])
    fused = running_fusions(vectors, None, "COSINE", min_similarity=0.3)
    assert np.allclose(fused[1], fuse(vectors[:2]))
    assert np.allclose(fused[2], b)  # another person: searched alone, not mixed with the first two
    assert np.allclose(fused[3], fuse(vectors[2:]))  # and fused from there on
    assert np.allclose(running_fusions(vectors, None, "COSINE")[2], fuse(vectors[:3]))  # no bound: mixed
    assert np.allclose(
        running_fusions(vectors, None, "L2", min_similarity=0.3)[2], fuse(vectors[:3], None, "L2")
    )


def test_track_fusion_restarts_when_the_tracker_followed_another_person() -> None:
    tf = TrackFusion("COSINE", clock=Clock(), min_similarity=0.3)
    key = ("d", "c", "t")
    tf.update(key, "a1", unit(1, 0.1), 0.8)
    fused, n = tf.update(key, "a2", unit(1, -0.1), 0.8)
    assert n == 2 and np.allclose(fused, unit(1, 0))
    restarts = tf.restarts
    fused, n = tf.update(key, "b1", unit(0, 1), 0.9)
    assert n == 1 and np.allclose(fused, unit(0, 1)) and tf.restarts == restarts + 1
    fused, n = tf.update(key, "b2", unit(0.1, 1), 0.9)
    assert n == 2 and fused @ unit(0, 1) > 0.99
    # A redelivered crop of the first person changes nothing, though its vector is no longer held.
    again, n = tf.update(key, "a1", unit(1, 0.1), 0.8)
    assert n == 2 and np.allclose(again, fused) and tf.restarts == restarts + 1
    # A fallback never restarts a track that has passed crops: it is left out anyway.
    fused2, n = tf.update(key, "fallback", unit(1, 0), 0.5, passed=False)
    assert n == 2 and np.allclose(fused2, fused) and tf.restarts == restarts + 1
    # Without a bound every crop is fused.
    loose = TrackFusion("COSINE", clock=Clock())
    loose.update(key, "a1", unit(1, 0.1), 0.8)
    assert loose.update(key, "b1", unit(0, 1), 0.9)[1] == 2


def test_the_embedder_builds_its_fusion_from_the_settings() -> None:
    from lfr.core.config import load_settings
    from lfr.embedder.service import track_fusion

    tf = track_fusion(load_settings(), "COSINE")
    assert tf is not None and tf.min_similarity == 0.3 and tf.max_crops == 8 and tf.metric == "COSINE"
    loose = track_fusion(load_settings(embedder={"track_fusion_min_similarity": None}), "COSINE")
    assert loose is not None and loose.min_similarity is None
    assert track_fusion(load_settings(embedder={"track_fusion": False}), "COSINE") is None
