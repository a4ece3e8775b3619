"""Tracker association and best-shot limits: embedding load proportional to people, not frames."""

from __future__ import annotations

import itertools

import pytest

from lfr.ingest.bestshot import BestShotSelector, Outcome, Release
from lfr.ingest.tracker import IouTracker


def test_one_walking_face_keeps_one_track_and_two_faces_get_two() -> None:
    tr = IouTracker(0.3, 2.0, token="t")
    ids_a, ids_b = set(), set()
    for i in range(20):
        t = i * 0.2
        upd = tr.update([(100 + 10 * i, 100, 60, 70), (800 - 12 * i, 300, 80, 90)], t)
        ids_a.add(upd.track_ids[0])
        ids_b.add(upd.track_ids[1])
    assert len(ids_a) == 1 and len(ids_b) == 1 and ids_a != ids_b
    assert tr.started_total == 2


def test_fast_mover_is_followed_by_prediction_and_distance_gate() -> None:
    # 45 px per analysed frame for a 50 px face: IoU with the last box is about 0.05.
    tr = IouTracker(0.3, 2.0)
    ids = {tr.update([(100 + 45 * i, 200, 50, 60)], i * 0.2).track_ids[0] for i in range(10)}
    assert len(ids) == 1


def test_distant_or_differently_sized_faces_are_not_merged() -> None:
    tr = IouTracker(0.3, 2.0)
    first = tr.update([(100, 100, 50, 60)], 0.0).track_ids[0]
    far = tr.update([(300, 100, 50, 60)], 0.2).track_ids[0]  # 4 face widths away
    assert far != first
    tr2 = IouTracker(0.3, 2.0)
    small = tr2.update([(100, 100, 40, 48)], 0.0).track_ids[0]
    big = tr2.update([(110, 95, 120, 140)], 0.2).track_ids[0]  # 3x the width: another (nearer) person
    assert big != small


def test_track_ends_after_max_age_and_a_return_is_a_new_track() -> None:
    tr = IouTracker(0.3, 1.0)
    a = tr.update([(100, 100, 60, 60)], 0.0).track_ids[0]
    assert tr.update([], 0.9).ended == []
    upd = tr.update([(100, 100, 60, 60)], 2.5)
    assert upd.ended == [a]
    assert upd.track_ids[0] != a and upd.started == upd.track_ids


def test_track_ids_unique_across_tracker_instances() -> None:
    a = IouTracker(0.3, 1.0).update([(0, 0, 50, 50)], 0.0).track_ids[0]
    b = IouTracker(0.3, 1.0).update([(0, 0, 50, 50)], 0.0).track_ids[0]
    assert a != b  # a restarted worker does not reuse a camera's track ids


def test_first_good_face_is_sent_at_once() -> None:
    sel: BestShotSelector[str] = BestShotSelector(margin=0.1, max_per_track=3, min_interval_s=1.0)
    assert sel.offer("t1", 0.0, 0.5, "a") == (Outcome.SENT, [Release("a")])


def test_later_shot_only_when_clearly_better_and_interval_passed() -> None:
    sel: BestShotSelector[str] = BestShotSelector(margin=0.1, max_per_track=3, min_interval_s=1.0)
    sel.offer("t1", 0.0, 0.5, "a")
    assert sel.offer("t1", 1.5, 0.55, "b") == (Outcome.NOT_BETTER, [])  # better, but not by the margin
    assert sel.offer("t1", 2.0, 0.65, "c") == (Outcome.SENT, [Release("c")])
    assert sel.offer("t1", 3.5, 0.70, "d") == (Outcome.NOT_BETTER, [])  # margin is over the best sent


def test_better_face_too_soon_is_held_and_sent_when_due() -> None:
    sel: BestShotSelector[str] = BestShotSelector(margin=0.1, max_per_track=3, min_interval_s=1.0)
    sel.offer("t1", 0.0, 0.5, "a")
    assert sel.offer("t1", 0.2, 0.7, "b") == (Outcome.HELD, [])
    assert sel.offer("t1", 0.4, 0.8, "c") == (Outcome.HELD, [])  # the best held one replaces the other
    assert sel.due(0.6) == []
    assert sel.due(1.1) == [("t1", Release("c"))]
    assert sel.due(5.0) == []


def test_held_shot_is_released_by_a_later_worse_face_or_the_track_end() -> None:
    sel: BestShotSelector[str] = BestShotSelector(margin=0.1, max_per_track=3, min_interval_s=1.0)
    sel.offer("t1", 0.0, 0.5, "a")
    sel.offer("t1", 0.2, 0.9, "b")
    assert sel.offer("t1", 1.2, 0.55, "c") == (Outcome.NOT_BETTER, [Release("b")])
    sel.offer("t2", 0.0, 0.5, "x")
    sel.offer("t2", 0.3, 0.9, "y")
    assert sel.end("t2", 0.5) == ([], 1)  # interval not yet passed: the held shot is dropped
    sel.offer("t3", 0.0, 0.5, "p")
    sel.offer("t3", 0.3, 0.9, "q")
    assert sel.end("t3", 2.3) == ([Release("q")], 2)


def test_per_track_cap_and_rate_bound_crops_by_people_not_frames() -> None:
    sel: BestShotSelector[int] = BestShotSelector(margin=0.05, max_per_track=3, min_interval_s=1.0)
    sent: list[tuple[float, int]] = []
    # One person seen at 5 fps for 30 s with steadily improving quality.
    for i in range(150):
        t = i * 0.2
        _, out = sel.offer("t1", t, min(0.2 + 0.01 * i, 1.0), i)
        sent += [(t, r.payload) for r in out]
        sent += [(t, r.payload) for _, r in sel.due(t)]
    assert len(sent) == 3
    times = [t for t, _ in sent]
    assert all(b - a >= 1.0 for a, b in itertools.pairwise(times))
    assert sel.offer("t1", 40.0, 1.0, 999) == (Outcome.TRACK_LIMIT, [])


def test_a_crop_sent_outside_selection_counts_against_the_cap_but_holds_nothing_back() -> None:
    sel: BestShotSelector[str] = BestShotSelector(margin=0.1, max_per_track=2, min_interval_s=1.0)
    sel.note_sent("t1")  # the track's unpassed face, sent by the pipeline
    assert sel.sent("t1") == 1 and sel.sent("t2") == 0
    # The first face that passes is still sent at once, neither held by the interval nor barred by a bar.
    assert sel.offer("t1", 0.1, 0.2, "a") == (Outcome.SENT, [Release("a")])
    assert sel.offer("t1", 5.0, 0.9, "b") == (Outcome.TRACK_LIMIT, [])
    assert sel.end("t1", 6.0) == ([], 2)


def test_a_steady_track_sends_later_views_at_the_refresh_interval() -> None:
    # Quality saturates: no face beats the first by the margin, yet the track sends a view every 2 s.
    sel: BestShotSelector[int] = BestShotSelector(
        margin=0.1, max_per_track=3, min_interval_s=1.0, refresh_s=2.0
    )
    sent: list[tuple[float, Release[int]]] = []
    for i in range(60):  # 12 s at 5 fps
        t = i * 0.2
        quality = 0.88 if i % 5 == 2 else 0.85  # one slightly better face each second
        _, out = sel.offer("t1", t, quality, i)
        sent += [(t, r) for r in out]
    assert [(round(t, 1), r.payload, r.refresh) for t, r in sent] == [
        (0.0, 0, False),
        (2.0, 7, True),  # the best face since the first send (the newest of the 0.88 ones)
        (4.0, 17, True),
    ]
    assert sel.refreshed == 2 and sel.sent("t1") == 3


def test_refresh_waits_its_interval_and_a_better_face_still_comes_first() -> None:
    sel: BestShotSelector[str] = BestShotSelector(
        margin=0.1, max_per_track=3, min_interval_s=1.0, refresh_s=2.0
    )
    sel.offer("t1", 0.0, 0.5, "a")
    assert sel.offer("t1", 1.0, 0.5, "b") == (Outcome.NOT_BETTER, [])  # refresh candidate, not due yet
    assert sel.offer("t1", 1.2, 0.7, "c") == (Outcome.SENT, [Release("c")])  # better: the interval rule
    assert sel.offer("t1", 2.0, 0.6, "d") == (Outcome.NOT_BETTER, [])
    assert sel.offer("t1", 3.1, 0.55, "e") == (Outcome.NOT_BETTER, [])  # 1.9 s after the last send
    assert sel.due(3.5) == []  # due, but the track is not seen: a refresh waits for it
    assert sel.offer("t1", 3.6, 0.5, "f") == (Outcome.NOT_BETTER, [Release("d", refresh=True)])  # the best
    # A track that leaves sends no refresh, whenever it ends: its candidate dies with it.
    sel.offer("t2", 0.0, 0.5, "x")
    sel.offer("t2", 0.6, 0.5, "y")
    assert sel.due(5.0) == []
    assert sel.end("t2", 5.0) == ([], 1)


def test_without_refresh_a_steady_track_sends_one_crop() -> None:
    sel: BestShotSelector[int] = BestShotSelector(margin=0.1, max_per_track=3, min_interval_s=1.0)
    sends = sum(len(sel.offer("t1", i * 0.2, 0.85, i)[1]) for i in range(60))
    assert sends == 1 and sel.refreshed == 0
    with pytest.raises(ValueError, match="refresh_s"):
        BestShotSelector(margin=0.1, max_per_track=3, min_interval_s=1.0, refresh_s=0.5)
