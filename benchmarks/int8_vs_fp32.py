"""int8 against fp32 on this host, for the demo: latency and size ratios from one build.

    python benchmarks/int8_vs_fp32.py

Builds the demo's fp32 and int8 targets in a temp copy (fresh cache, so the figures are measured
now) and prints each artifact's size, p50/p95/p99 latency (threads as configured), accuracy, and
the int8/fp32 ratios.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from support import copy_demo
PAIRS = [("cpu-fp32", "cpu-int8")]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        project = copy_demo(Path(tmp) / "demo")
        names = [n for pair in PAIRS for n in pair]
        out = subprocess.run([sys.executable, "-m", "edgebuild", "build", *names, "--json", "-j", "1", "-C",
                              str(project)], capture_output=True, text=True)
        doc = json.loads(out.stdout)
    print(f"{'target':10} {'size KiB':>9} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'threads':>7} {'accuracy':>8}")
    for name in names:
        m = doc["targets"][name].get("metrics", {})
        lat = m.get("latency", {})
        print(f"{name:10} {m['size_bytes'] / 1024:9.1f} {lat['p50_ms']:8.4f} {lat['p95_ms']:8.4f} "
              f"{lat['p99_ms']:8.4f} {lat['threads']:7d} {m.get('accuracy', float('nan')):8.4f}")
    for fp32, int8 in PAIRS:
        a, b = doc["targets"][fp32]["metrics"], doc["targets"][int8]["metrics"]
        print(f"{int8}/{fp32}: size x{b['size_bytes'] / a['size_bytes']:.2f}, "
              f"p50 latency x{b['latency']['p50_ms'] / a['latency']['p50_ms']:.2f}, "
              f"accuracy drop {a['accuracy'] - b['accuracy']:+.4f}, worst class drop {b['worst_class_drop']:+.4f}")


if __name__ == "__main__":
    main()
