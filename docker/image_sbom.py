"""The container image's SBOM: one CycloneDX 1.6 JSON document of everything the image ships.

Why a merge rather than a scanner: the image must be describable offline, at build time, from what the build
itself knows, with no scanner image or vulnerability database to download. Three sources, all inside the
image: the Python environment (``cyclonedx-py environment`` reads the installed distributions' metadata),
the operating-system packages (the Debian package database, ``/var/lib/dpkg/status``) and the model files
(each model card lists its files with their sha256). The result names the image as its subject
(``metadata.component``, type ``container``) and is reproducible: the same inputs give the same bytes.

Standard library plus PyYAML (a dependency of lfr, so present in the image's environment).

    python image_sbom.py --python-sbom python.cdx.json --dpkg-status /var/lib/dpkg/status \
        --models /opt/lfr/models --name lfr --version 0.1.0 -o /opt/lfr/sbom.cdx.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml

SPEC_VERSION = "1.6"


def dpkg_packages(status_text: str) -> list[dict[str, Any]]:
    """Installed packages of a dpkg status file as CycloneDX components (deb purls, sorted by name)."""
    out: dict[str, dict[str, Any]] = {}
    for para in status_text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in para.splitlines():
            if line[:1] in (" ", "\t"):
                continue  # a continuation line of a multi-line field (descriptions, conffiles)
            key, sep, value = line.partition(":")
            if sep:
                fields[key.strip()] = value.strip()
        if "install ok installed" not in fields.get("Status", ""):
            continue  # removed, half-installed or config-files only: not in the image
        name, version, arch = fields.get("Package"), fields.get("Version"), fields.get("Architecture", "")
        if not name or not version:
            continue
        ref = f"pkg:deb/debian/{quote(name, safe='')}@{quote(version, safe='')}"
        if arch:
            ref += f"?arch={quote(arch, safe='')}"
        comp: dict[str, Any] = {
            "type": "library" if name.startswith("lib") else "application",
            "bom-ref": ref,
            "name": name,
            "version": version,
            "purl": ref,
        }
        source = fields.get("Source", "").split(" ")[0]
        if source and source != name:
            comp["properties"] = [{"name": "dpkg:source", "value": source}]
        out[ref] = comp
    return [out[k] for k in sorted(out, key=lambda r: (out[r]["name"], r))]


def model_files(models_dir: Path) -> list[dict[str, Any]]:
    """Every file a model card lists, with the sha256 the card promises and the file's own (must agree)."""
    comps: list[dict[str, Any]] = []
    for card_path in sorted(models_dir.glob("*/card.yaml")):
        card = yaml.safe_load(card_path.read_text())
        for f in card.get("files", []):
            path = card_path.parent / f["path"]
            actual = hashlib.sha256(path.read_bytes()).hexdigest()
            if actual != f["sha256"]:
                raise SystemExit(f"{path}: sha256 {actual} differs from its card's {f['sha256']}")
            comps.append(
                {
                    "type": "machine-learning-model" if f.get("role") == "model" else "file",
                    "bom-ref": f"model:{card['name']}/{f['path']}",
                    "name": f"{card['name']}/{f['path']}",
                    "version": str(card.get("version", "")),
                    "hashes": [{"alg": "SHA-256", "content": f["sha256"]}],
                    "properties": [{"name": "lfr:model-kind", "value": str(card.get("kind", ""))}],
                }
            )
    return comps


def image_bom(
    python_bom: dict[str, Any],
    debs: list[dict[str, Any]],
    models: list[dict[str, Any]],
    name: str,
    version: str,
) -> dict[str, Any]:
    """The merged document: the image as subject, the lfr application and everything else as components."""
    app = dict(python_bom.get("metadata", {}).get("component") or {})
    image_ref = f"container:{name}@{version}"
    components: list[dict[str, Any]] = []
    if app:
        components.append(app)
    components += python_bom.get("components", []) + debs + models
    dependencies = list(python_bom.get("dependencies", []))
    top = [c["bom-ref"] for c in ([app] if app else []) + debs + models if c.get("bom-ref")]
    dependencies.append({"ref": image_ref, "dependsOn": top})
    bom: dict[str, Any] = {
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "version": 1,
        "metadata": {
            "component": {"type": "container", "bom-ref": image_ref, "name": name, "version": version},
            "properties": [
                {"name": "lfr:sbom-sources", "value": "python environment, dpkg status, model cards"}
            ],
        },
        "components": components,
        "dependencies": dependencies,
    }
    digest = hashlib.sha256(json.dumps(bom, sort_keys=True).encode()).digest()
    bom["serialNumber"] = f"urn:uuid:{uuid.UUID(bytes=digest[:16], version=5)}"  # same inputs, same bytes
    return bom


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--python-sbom", type=Path, required=True, help="cyclonedx-py environment output (JSON)")
    ap.add_argument("--dpkg-status", type=Path, default=Path("/var/lib/dpkg/status"))
    ap.add_argument("--models", type=Path, help="the models directory (one folder per card)")
    ap.add_argument("--name", default="lfr")
    ap.add_argument("--version", required=True)
    ap.add_argument("-o", "--output", type=Path, required=True)
    args = ap.parse_args(argv)
    python_bom = json.loads(args.python_sbom.read_text())
    debs = dpkg_packages(args.dpkg_status.read_text()) if args.dpkg_status.exists() else []
    models = model_files(args.models) if args.models else []
    bom = image_bom(python_bom, debs, models, args.name, args.version)
    args.output.write_text(json.dumps(bom, indent=2, sort_keys=True) + "\n")
    n_python = len(python_bom.get("components", []))
    print(
        f"{args.output}: {len(bom['components'])} components ({n_python} Python, "
        f"{len(debs)} Debian, {len(models)} model files)",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
