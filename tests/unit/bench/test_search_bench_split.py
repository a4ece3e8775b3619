"""The gallery bench's probe split: mated probes first, one per person, their other images left in the
gallery so the bench can measure whether an index loses a person's own images (mated recall)."""

from __future__ import annotations

from pathlib import Path

from lfr.bench.search import record_of, split_probes


def test_record_is_the_first_folder_or_the_stem(tmp_path: Path) -> None:
    assert record_of(tmp_path / "001_Ada" / "frontal_01.jpg", tmp_path) == "001_Ada"
    assert record_of(tmp_path / "001_Ada" / "sub" / "x.jpg", tmp_path) == "001_Ada"
    assert record_of(tmp_path / "B1234.jpg", tmp_path) == "B1234"


def test_split_takes_one_image_of_each_repeated_person_first() -> None:
    records = ["a", "a", "a", "b", "c", "c", "d"]
    probes, gallery = split_probes(records, queries=3)
    # a and c have other images: one probe each, then single-image people fill the rest.
    assert probes == [0, 4, 3]
    assert gallery == [1, 2, 5, 6]
    # Every probe row is out of the gallery, every other row in it, none twice.
    assert sorted(probes + gallery) == list(range(len(records)))
    mates = {records[p]: [g for g in gallery if records[g] == records[p]] for p in probes}
    assert mates == {"a": [1, 2], "c": [5], "b": []}


def test_split_always_gives_the_probes_asked_for_keeping_mates_while_it_can() -> None:
    records = ["a", "a", "a", "b", "b", "c"]
    probes, gallery = split_probes(records, queries=4)
    # a and b first, then c (single), then a's second image: a still keeps one in the gallery, b would not.
    assert probes == [0, 3, 5, 1] and gallery == [2, 4]
    probes, gallery = split_probes(records, queries=10)
    assert sorted(probes) == list(range(6)) and gallery == []
    probes, gallery = split_probes(records, queries=1)
    assert probes == [0] and gallery == [1, 2, 3, 4, 5]
