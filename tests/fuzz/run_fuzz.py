"""``make fuzz``: run each fuzz target for a bounded time and print its figures as JSON.

Each target runs in its own process (libFuzzer exits the process on a finding) from a corpus seeded with
valid inputs under ``.lfr/fuzz/<target>``, kept between runs so later runs start where earlier ones ended.
Figures per target: executions, seconds, coverage (libFuzzer's ``cov``: instrumented edges in lfr reached;
``ft``: features), corpus size, and findings (crash inputs libFuzzer wrote).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DONE = re.compile(r"DONE\s+cov: (\d+) ft: (\d+) corp: (\d+)/")
RUNS = re.compile(r"Done (\d+) runs in (\d+) second")


def run(target: str, seconds: int, workdir: Path) -> dict[str, object]:
    corpus = workdir / target
    crashes = workdir / f"{target}-findings"
    corpus.mkdir(parents=True, exist_ok=True)
    crashes.mkdir(parents=True, exist_ok=True)
    if not any(corpus.iterdir()):
        subprocess.run(
            [sys.executable, str(HERE / "fuzz_targets.py"), "--seed", target, str(corpus)], check=True
        )
    cmd = [
        sys.executable,
        str(HERE / "fuzz_targets.py"),
        target,
        f"-max_total_time={seconds}",
        f"-artifact_prefix={crashes}/",
        "-print_final_stats=1",
        str(corpus),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    log = proc.stdout + proc.stderr
    (workdir / f"{target}.log").write_text(log)
    done, runs = DONE.findall(log), RUNS.findall(log)
    findings = sorted(p.name for p in crashes.iterdir())
    return {
        "target": target,
        "executions": int(runs[-1][0]) if runs else None,
        "seconds": int(runs[-1][1]) if runs else None,
        "coverage_edges": int(done[-1][0]) if done else None,
        "features": int(done[-1][1]) if done else None,
        "corpus": int(done[-1][2]) if done else None,
        "findings": findings,
        "exit": proc.returncode,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=int, default=300, help="per target")
    ap.add_argument("--workdir", type=Path, default=Path(".lfr/fuzz"))
    ap.add_argument("targets", nargs="*", default=["crop", "image"])
    args = ap.parse_args()
    results = [run(t, args.seconds, args.workdir) for t in args.targets]
    print(json.dumps(results, indent=2))
    return 1 if any(r["findings"] or r["exit"] not in (0,) for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
