"""Planning plus a no-op build for generated projects of 50, 500 and 5000 targets.

    python benchmarks/planning_scale.py [--sizes 50 500 5000]

Each target has its own tiny ONNX model (so no two targets share nodes) and a one-step project
recipe. The first build runs with the inline executor (not timed); then `edgebuild build` is timed
as a fresh process, which is what a user waits for when nothing changed. Target (issue 2): 500
targets under 2 s.
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

RECIPE = """[recipe]
name = "bench"
description = "one cheap step per target"
[parameters]
[[steps]]
id = "check"
step = "onnx.check"
inputs = { model = "model.source" }
artifact = "{model}.onnx"
"""


def make_project(root: Path, n: int) -> None:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    (root / "models").mkdir(parents=True)
    (root / "recipes").mkdir()
    (root / "recipes" / "bench.toml").write_text(RECIPE)
    lines = ['[project]\nname = "bench"\nversion = "1.0.0"\n']
    for i in range(n):
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
        bias = numpy_helper.from_array(np.full([4], i, dtype=np.float32), "b")
        graph = helper.make_graph([helper.make_node("Add", ["x", "b"], ["y"])], "g", [x], [y], [bias])
        onnx.save(
            helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]),
            str(root / "models" / f"m{i}.onnx"),
        )
        lines.append(
            f'[models.m{i}]\nsource = "models/m{i}.onnx"\n[targets.t{i}]\nmodel = "m{i}"\nrecipe = "bench"\n'
        )
    (root / "targets.toml").write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="*", default=[50, 500, 5000])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    exe = shutil.which("edgebuild") or str(Path(sys.executable).parent / "edgebuild")
    print(
        f"{'targets':>8} {'first build s':>14} {'no-op min s':>12} {'no-op median s':>15} {'per target ms':>14}"
    )
    for n in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp) / "p"
            make_project(root, n)
            start = time.perf_counter()
            subprocess.run([exe, "build", "-q", "--executor", "inline", "-C", str(root)], check=True, env=env)
            first = time.perf_counter() - start
            times = []
            for _ in range(args.runs):
                start = time.perf_counter()
                subprocess.run([exe, "build", "-q", "-C", str(root)], check=True, env=env)
                times.append(time.perf_counter() - start)
            med = statistics.median(times)
            print(f"{n:8d} {first:14.1f} {min(times):12.3f} {med:15.3f} {1000 * med / n:14.3f}", flush=True)


if __name__ == "__main__":
    main()
