"""Supply chain: the SBOM that `make sbom` writes lists every installed distribution, and every model file
is checked against its card's sha256 each time a detector or embedder loads (not only when built)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

import lfr
from lfr.core.config import load_settings
from lfr.vision import ModelFileError, list_cards, load_detector, load_embedder

REPO = Path(__file__).resolve().parents[3]


def test_make_sbom_lists_the_environment(tmp_path: Path) -> None:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    if not (Path(sys.executable).parent / "cyclonedx-py").exists():
        pytest.skip("cyclonedx-py is not installed in this environment (dev extra)")
    out = tmp_path / "sbom.json"
    subprocess.run(
        ["make", "-s", "sbom-file", f"SBOM={out}", f"BIN={Path(sys.executable).parent}"],
        cwd=REPO,
        check=True,
        capture_output=True,
        timeout=300,
    )
    bom = json.loads(out.read_text())
    assert bom["bomFormat"] == "CycloneDX" and bom["specVersion"] >= "1.5"
    main = bom["metadata"]["component"]
    assert main["name"] == "lfr" and main["version"] == lfr.__version__
    listed = {c["name"].lower().replace("_", "-"): c for c in bom["components"]}
    installed = {
        d.metadata["Name"].lower().replace("_", "-"): d.version
        for d in metadata.distributions()
        if d.metadata["Name"].lower() != "lfr"
    }
    assert set(installed) <= set(listed), f"missing from the SBOM: {sorted(set(installed) - set(listed))}"
    for name in ("onnxruntime", "aiokafka", "cryptography", "opencv-python-headless"):
        if name in installed:
            assert listed[name]["version"] == installed[name]
            assert listed[name]["purl"].startswith(f"pkg:pypi/{name}@")


def test_every_model_file_is_checked_at_load(models_dir: Path, tmp_path: Path) -> None:
    cards = list_cards(models_dir)
    assert cards, f"no built models in {models_dir}"
    copy = tmp_path / "models"
    shutil.copytree(models_dir, copy)  # whole: a plug-in may read another card (an embedder, its detector's)
    for card in cards:
        settings = load_settings(data_dir=str(tmp_path), models={"dir": copy, card.kind: card.name})
        load = load_detector if card.kind == "detector" else load_embedder
        load(settings)  # the intact copy loads
        for f in card.files:
            target = copy / card.name / f.path
            original = target.read_bytes()
            data = bytearray(original)
            data[len(data) // 2] ^= 0x01  # one bit, mid-file: a tampered or corrupted weight
            target.write_bytes(bytes(data))
            with pytest.raises(ModelFileError, match="sha256"):
                load(settings)
            target.write_bytes(original)
