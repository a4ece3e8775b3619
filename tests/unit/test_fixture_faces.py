"""The committed test face data stays small, licensed and documented (tests/fixtures/README.md)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FACES = REPO / "tests" / "fixtures" / "faces"
README = REPO / "tests" / "fixtures" / "README.md"
MAX_BYTES = 10_000_000  # a few MB: whole evaluation sets stay in the shared data


def _files() -> list[Path]:
    return sorted(p for p in FACES.rglob("*") if p.is_file())


def test_every_source_folder_carries_its_licence() -> None:
    sources = sorted(p for p in FACES.iterdir() if p.is_dir())
    assert sources, "no committed face data"
    for folder in sources:
        licences = list(folder.glob("LICENSE*"))
        assert licences, f"{folder.name} has no licence file"
        assert "MIT License" in licences[0].read_text(), f"{folder.name}: only permissive (MIT) sources"


def test_every_file_is_named_in_the_readme() -> None:
    text = README.read_text()
    for path in _files():
        if path.name.startswith("LICENSE"):
            continue
        rel = path.relative_to(FACES)
        missing = [part for part in rel.parts if part not in text]
        assert not missing, f"{rel} is not documented in {README.name} (missing {missing})"


def test_the_set_stays_small() -> None:
    total = sum(p.stat().st_size for p in _files())
    assert total < MAX_BYTES, f"{total:,} bytes of committed face data"
