"""The gallery import bench's steady-rate window and its image tree."""

from __future__ import annotations

from pathlib import Path

import pytest

from lfr.bench.gallery_import import image_tree, steady_rate


def test_steady_rate_skips_start_up_and_tail() -> None:
    # Slow start (model load), a steady 10 images/s, then a slow tail: only the middle counts.
    samples = [(0.0, 0), (5.0, 1), (6.0, 10), (14.0, 90), (30.0, 100)]
    assert steady_rate(samples, 100) == pytest.approx(10.0)
    assert steady_rate([(0.0, 0), (1.0, 50)], 100) is None  # never reached 90 %


def test_image_tree_links_the_first_images_with_their_record_folders(tmp_path: Path) -> None:
    src = tmp_path / "src"
    for person in ("b_person", "a_person"):
        (src / person).mkdir(parents=True)
        for i in range(3):
            (src / person / f"{i}.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (src / "a_person" / "notes.txt").write_text("not an image")
    assert image_tree(src, 4, tmp_path / "tree") == 4
    got = sorted(p.relative_to(tmp_path / "tree").as_posix() for p in (tmp_path / "tree").rglob("*.jpg"))
    assert got == ["a_person/0.jpg", "a_person/1.jpg", "a_person/2.jpg", "b_person/0.jpg"]
    with pytest.raises(RuntimeError, match="no images"):
        image_tree(tmp_path / "tree" / "a_person" / "nothing", 4, tmp_path / "t2")
