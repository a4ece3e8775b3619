"""The container image's SBOM (docker/image_sbom.py, run by docker/Dockerfile and `make sbom-image`): the
Debian packages, the Python environment and the model files, in one reproducible CycloneDX document."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml

SCRIPT = Path(__file__).resolve().parents[3] / "docker" / "image_sbom.py"

STATUS = """Package: libc6
Status: install ok installed
Architecture: amd64
Source: glibc
Version: 2.36-9+deb12u7
Description: GNU C Library
 a continuation line: Status: deinstall ok config-files

Package: old-tool
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0

Package: tzdata
Status: install ok installed
Architecture: all
Version: 1:2024a-0+deb12u1
"""


def _module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("image_sbom", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _models(root: Path, corrupt: bool = False) -> Path:
    card_dir = root / "models" / "tiny"
    card_dir.mkdir(parents=True)
    (card_dir / "model.onnx").write_bytes(b"weights")
    digest = hashlib.sha256(b"other" if corrupt else b"weights").hexdigest()
    card = {
        "name": "tiny",
        "version": "1",
        "kind": "embedder",
        "files": [{"path": "model.onnx", "sha256": digest, "role": "model"}],
    }
    (card_dir / "card.yaml").write_text(yaml.safe_dump(card))
    return root / "models"


def test_only_installed_debian_packages_are_listed_with_their_purls() -> None:
    debs = _module().dpkg_packages(STATUS)
    assert [d["name"] for d in debs] == ["libc6", "tzdata"]  # config-files only: not in the image
    libc, tz = debs
    assert libc["purl"] == "pkg:deb/debian/libc6@2.36-9%2Bdeb12u7?arch=amd64"
    assert libc["properties"] == [{"name": "dpkg:source", "value": "glibc"}]
    assert tz["purl"] == "pkg:deb/debian/tzdata@1%3A2024a-0%2Bdeb12u1?arch=all"  # the epoch's colon escaped


def test_a_model_file_that_differs_from_its_card_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="differs from its card"):
        _module().model_files(_models(tmp_path, corrupt=True))


def test_the_document_names_the_image_and_holds_every_source_reproducibly(tmp_path: Path) -> None:
    python_bom = {
        "metadata": {"component": {"type": "application", "bom-ref": "lfr==0.1.0", "name": "lfr"}},
        "components": [{"type": "library", "bom-ref": "aiokafka==0.12.0", "name": "aiokafka"}],
        "dependencies": [{"ref": "lfr==0.1.0", "dependsOn": ["aiokafka==0.12.0"]}],
    }
    (tmp_path / "py.json").write_text(json.dumps(python_bom))
    (tmp_path / "status").write_text(STATUS)
    models = _models(tmp_path)
    outs = []
    for i in range(2):
        out = tmp_path / f"sbom{i}.json"
        subprocess.run(
            [
                sys.executable,
                str(SCRIPT),
                "--python-sbom",
                str(tmp_path / "py.json"),
                "--dpkg-status",
                str(tmp_path / "status"),
                "--models",
                str(models),
                "--version",
                "0.1.0",
                "-o",
                str(out),
            ],
            check=True,
            capture_output=True,
        )
        outs.append(out.read_bytes())
    assert outs[0] == outs[1], "the same inputs must give the same document"
    bom = json.loads(outs[0])
    assert bom["bomFormat"] == "CycloneDX" and bom["specVersion"] == "1.6"
    assert bom["metadata"]["component"] == {
        "type": "container",
        "bom-ref": "container:lfr@0.1.0",
        "name": "lfr",
        "version": "0.1.0",
    }
    refs = [c["bom-ref"] for c in bom["components"]]
    assert len(refs) == len(set(refs)) == 5  # lfr, aiokafka, two Debian packages, one model file
    [model] = [c for c in bom["components"] if c["type"] == "machine-learning-model"]
    assert model["hashes"] == [{"alg": "SHA-256", "content": hashlib.sha256(b"weights").hexdigest()}]
    [image] = [d for d in bom["dependencies"] if d["ref"] == "container:lfr@0.1.0"]
    assert set(image["dependsOn"]) == set(refs) - {"aiokafka==0.12.0"}  # reached through lfr
