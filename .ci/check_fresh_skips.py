#!/usr/bin/env python3
"""Check a test run without the shared face data against the documented list of skips.

Usage: check_fresh_skips.py JUNIT_XML [--baseline JUNIT_XML] [--expected FILE] [--partial]

Why: a fresh clone has no ``../shared`` data, and every test that quietly skips there is a test users never
run. The documented list (one pytest node id per line, then `` | `` and the reason) names the few tests that
need a whole evaluation set; the check fails when the run skipped any other test, and when a listed test
no longer skips or is gone (so the list stays true; ``--partial`` for a run of part of the suite only
excuses listed tests that were not in the run). Tests that the baseline run, with the shared data, skipped too
(no Chromium, no GPU) skip for their own reasons: they are reported, not counted.
"""

from __future__ import annotations

import argparse
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_EXPECTED = REPO / "tests" / "fresh_clone_skips.txt"


def node_to_key(node_id: str) -> str:
    """``tests/a/test_b.py::Class::test_c[x]`` -> ``tests.a.test_b.Class::test_c[x]`` (junit's naming)."""
    path, _, rest = node_id.partition("::")
    parts = rest.split("::")
    classname = ".".join([path.removesuffix(".py").replace("/", "."), *parts[:-1]])
    return f"{classname}::{parts[-1]}"


def read_expected(path: Path) -> dict[str, str]:
    """Node id key -> reason, from the documented list (``#`` comments and blank lines ignored)."""
    expected: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        node, sep, reason = line.partition(" | ")
        if not sep or not reason.strip():
            raise SystemExit(f"{path}:{number}: expected 'NODE_ID | reason', got {line!r}")
        expected[node_to_key(node.strip())] = reason.strip()
    return expected


def read_junit(path: Path) -> tuple[dict[str, str], set[str]]:
    """(skipped test key -> skip message, every test key) from a pytest junit XML file."""
    root = ET.parse(path).getroot()
    skipped: dict[str, str] = {}
    ran: set[str] = set()
    for case in root.iter("testcase"):
        ran.add(f"{case.get('classname')}::{case.get('name')}")
        skip = case.find("skipped")
        if skip is not None:
            skipped[f"{case.get('classname')}::{case.get('name')}"] = skip.get("message", "")
    return skipped, ran


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("junit", type=Path, help="junit XML of the run without the shared data")
    ap.add_argument("--baseline", type=Path, help="junit XML of the run with the shared data")
    ap.add_argument("--expected", type=Path, default=DEFAULT_EXPECTED)
    ap.add_argument("--partial", action="store_true", help="the run covered part of the suite only")
    args = ap.parse_args(argv)

    expected = read_expected(args.expected)
    skipped, ran = read_junit(args.junit)
    environment: dict[str, str] = {}
    if args.baseline is not None and args.baseline.is_file():
        base_skipped, _ = read_junit(args.baseline)
        environment = {k: v for k, v in skipped.items() if k in base_skipped and k not in expected}
    counted = {k: v for k, v in skipped.items() if k not in environment}

    unexpected = sorted(set(counted) - set(expected))
    not_skipped = sorted(k for k in set(expected) - set(counted) if k in ran)
    absent = sorted(k for k in expected if k not in ran)
    print(f"{len(ran)} tests, {len(skipped)} skipped without the shared data; {len(expected)} documented")
    for key in sorted(environment):
        print(f"  skipped with the shared data too (not counted): {key}: {environment[key]}")
    for key in unexpected:
        print(f"UNDOCUMENTED SKIP {key}: {counted[key]}")
    for key in not_skipped:
        print(f"LISTED BUT DID NOT SKIP {key}: remove it from {args.expected.name}")
    for key in absent:
        print(f"{'not in this run' if args.partial else 'LISTED BUT NOT IN THE RUN'}: {key}")
    if unexpected or not_skipped or (absent and not args.partial):
        print(f"fresh-clone check FAILED: the skips differ from {args.expected}")
        return 1
    print("fresh-clone check passed: exactly the documented tests skip")
    return 0


if __name__ == "__main__":
    sys.exit(main())
