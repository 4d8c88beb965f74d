"""`edgebuild --help` and a no-op `edgebuild all` on the demo project: wall time per call.

    python benchmarks/cli_startup.py [--runs 10]

Builds the demo first if needed (in a temp copy), then times each command RUNS times and prints
min / median. Target (issue 2): each under 0.3 s on the 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from support import copy_demo


def timed(cmd: list[str], runs: int, env: dict) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    exe = shutil.which("edgebuild") or str(Path(sys.executable).parent / "edgebuild")
    with tempfile.TemporaryDirectory() as tmp:
        project = copy_demo(Path(tmp) / "demo")
        print("building the demo once (not timed) ...", flush=True)
        subprocess.run([exe, "all", "-q", "-C", str(project)], check=True, env=env)
        rows = [
            ("edgebuild --help", [exe, "--help"]),
            ("no-op edgebuild all (demo)", [exe, "all", "-q", "-C", str(project)]),
            ("no-op edgebuild all --json", [exe, "all", "--json", "-C", str(project)]),
        ]
        print(
            f"{'command':32} {'min s':>8} {'median s':>9}   ({args.runs} runs, python {sys.version.split()[0]})"
        )
        for label, cmd in rows:
            times = timed(cmd, args.runs, env)
            print(f"{label:32} {min(times):8.3f} {statistics.median(times):9.3f}")


if __name__ == "__main__":
    main()
