"""Conversion cost and CPU latency of the TFLite / Edge TPU paths, per precision.

    python benchmarks/tflite_convert.py [MODEL.onnx CALIB.npz EVAL.npz INPUT=1,1,8,8]

For each precision: the `tflite.convert` step run the way the executor runs it (a worker in the
`litert` toolchain environment): wall time, peak RSS of the worker, file size; then one-thread
LiteRT latency (median of 200 invokes) and top-1 agreement with onnxruntime from `tflite.verify`.
Prints one line per precision; numbers, not assertions.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgebuild import toolchain  # noqa: E402
from edgebuild.steps.base import StepContext  # noqa: E402
from support import start_step_worker  # noqa: E402

VARIANTS = [
    ("fp32", {}),
    ("fp16", {}),
    ("int8-dynamic", {}),
    ("int8", {}),
    ("int8", {"quant_type": "per-tensor"}),
]


def run_worker(python: Path, step: str, inputs: dict, params: dict, out: Path) -> tuple[dict, float, int]:
    started = time.perf_counter()
    proc, result = start_step_worker(python, step, inputs, params, out)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    res = json.loads(result.read_text())
    if res["status"] != "ok":
        raise SystemExit(f"{step} failed: {res['message']}")
    return res["metadata"], seconds, usage.ru_maxrss // 1024


def latency_ms(model: Path, meta: dict, runs: int = 200) -> float:
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(model), num_threads=1)
    interp.allocate_tensors()
    for entry in meta["io"]["inputs"]:
        interp.set_tensor(entry["tensor_index"], np.zeros(entry["shape"], entry["dtype"]))
    times = []
    for _ in range(runs + 10):
        t = time.perf_counter()
        interp.invoke()
        times.append(time.perf_counter() - t)
    return statistics.median(times[10:]) * 1000


def main(argv: list[str]) -> None:
    model = Path(argv[0]) if argv else ROOT / "models" / "digits.onnx"
    calib = Path(argv[1]) if len(argv) > 1 else ROOT / "data" / "digits_calibration.npz"
    evaluation = Path(argv[2]) if len(argv) > 2 else ROOT / "data" / "digits_eval.npz"
    name, _, dims = (argv[3] if len(argv) > 3 else "input=1,1,8,8").partition("=")
    shapes = {name: [int(d) for d in dims.split(",")]}
    spec = tomllib.loads((ROOT / "recipes" / "edgetpu.toml").read_text())["toolchain"]
    started = time.perf_counter()
    existed = toolchain.lookup(spec) is not None
    env = toolchain.ensure(spec)
    print(
        f"toolchain litert: {'reused' if existed else 'created'} in {time.perf_counter() - started:.1f} s "
        f"(onnx2tf {env.versions.get('onnx2tf')}, ai-edge-quantizer {env.versions.get('ai-edge-quantizer')})"
    )
    from edgebuild.steps.tflite.verify import TfliteVerifyStep

    with tempfile.TemporaryDirectory() as tmp:
        for i, (precision, extra) in enumerate(VARIANTS):
            params = dict(extra, precision=precision, input_shapes=shapes)
            out = Path(tmp) / f"v{i}"
            meta, seconds, rss = run_worker(
                env.python, "tflite.convert", {"model": model, "calibration": calib}, params, out
            )
            tfl = out / "model.tflite"
            ctx = StepContext(
                {"model": tfl, "reference": model, "evaluation": evaluation},
                {"input_shapes": shapes, "max_samples": 500},
                Path(tmp) / f"verify{i}",
            )
            ctx.out.mkdir()
            m = TfliteVerifyStep().run(ctx)["metrics"]
            label = precision + "".join(f" {k}={v}" for k, v in extra.items())
            acc = (
                f" accuracy {m['accuracy']:.3f} (fp32 {m['accuracy_source']:.3f})" if "accuracy" in m else ""
            )
            print(
                f"{label:38} convert {seconds:5.1f} s  peak RSS {rss:5d} MiB  size {tfl.stat().st_size:8d} B  "
                f"latency {latency_ms(tfl, meta):7.3f} ms  top-1 agreement {m.get('top1_agreement', float('nan')):.3f}"
                f"  max|err| {m['max_abs_error']:.3g}{acc}"
            )


if __name__ == "__main__":
    main(sys.argv[1:])
