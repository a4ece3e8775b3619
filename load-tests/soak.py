"""Soak: run the whole demo pipeline for a while and sample every service's memory (RSS) once a minute.

A steady RSS and a steadily growing alert count mean no leak and no stall. Prints one JSON object at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path


def _rss_mb(pid: int) -> float:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    m = re.search(r"VmRSS:\s+(\d+) kB", text)
    return int(m.group(1)) / 1024 if m else 0.0


def _services(data_dir: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    for f in (data_dir / "run").glob("*.json"):
        try:
            doc = json.loads(f.read_text())
            out[doc["service"]] = int(doc["pid"])
        except (OSError, ValueError, KeyError):
            continue
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--data-dir", type=Path, default=Path(".lfr"))
    args = p.parse_args()
    seconds = args.minutes * 60
    demo = subprocess.Popen(
        [sys.executable, "-m", "lfr.cli", "demo", "--duration", str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "LFR_DATA_DIR": str(args.data_dir)},
    )
    samples: list[dict[str, float]] = []
    alerts = 0
    t0 = time.monotonic()
    next_sample = t0 + 60
    assert demo.stdout is not None
    for line in demo.stdout:
        sys.stdout.write(line)
        if line.startswith("ALERT "):
            alerts += 1
        if time.monotonic() >= next_sample:
            next_sample += 60
            samples.append(
                {
                    "t_s": round(time.monotonic() - t0),
                    "alerts": alerts,
                    **{k: round(_rss_mb(v), 1) for k, v in _services(args.data_dir).items()},
                }
            )
    demo.wait()
    print(
        json.dumps(
            {
                "minutes": args.minutes,
                "exit_code": demo.returncode,
                "alerts": alerts,
                "rss_mb_samples": samples,
            }
        )
    )


if __name__ == "__main__":
    main()
