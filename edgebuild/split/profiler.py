"""Per-node times of an ONNX model measured with onnxruntime's profiler.

The planner takes the server side's times from a run here, and the device side's from a JSON this
module writes when run on the device (`python -m edgebuild.split.profiler half.onnx --out p.json`).
It imports only numpy and onnxruntime, so it runs on a device that has no edgebuild.

onnxruntime fuses and expands nodes (Conv+BatchNormalization, HardSwish -> HardSigmoid+Mul): a
kernel whose name is no node of the model is charged to the model node that ran just before it,
so a fused or expanded node's time lands on its neighbour (fused-away nodes show 0 ms).

JSON: {"format": "edgebuild-split-profile/1", "model": file name, "runtime": "onnxruntime X",
       "runs": N, "threads": T, "total_ms": median wall time of one profiled run,
       "wall_ms": median wall time without the profiler, "scale": wall_ms / sum of kernel times,
       "kernel_ms": sum of node times, "nodes": {node name: ms per run, scaled to add up to wall_ms}}
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time

import numpy as np

FORMAT = "edgebuild-split-profile/1"
LEVELS = {
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}


def _session(model_bytes: bytes, threads: int, opt_level: str, profile_dir: str | None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, LEVELS[opt_level])
    if profile_dir:
        options.enable_profiling = True
        options.profile_file_prefix = os.path.join(profile_dir, "ort_profile")
    return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])


def _node_names(model_bytes: bytes) -> list[str]:
    import onnx

    return [n.name for n in onnx.load_from_string(model_bytes).graph.node]


def profile_model(
    model, feeds: dict, runs: int = 20, threads: int = 1, opt_level: str = "basic", warmup: int = 3
) -> dict:
    """Profile `model` (path or bytes) on `feeds`; returns the JSON document described above."""
    import onnxruntime as ort

    model_bytes = model if isinstance(model, bytes) else open(model, "rb").read()
    names = set(_node_names(model_bytes))
    with tempfile.TemporaryDirectory() as tmp:
        session = _session(model_bytes, threads, opt_level, tmp)
        walls = _wall_times(session, feeds, warmup, runs)
        with open(session.end_profiling()) as fh:
            events = json.load(fh)
    run_spans = sorted(
        (e["ts"], e["ts"] + e["dur"])
        for e in events
        if e.get("cat") == "Session" and e.get("name") == "model_run"
    )[warmup:]
    kernels = sorted(
        (e["ts"], e["name"][: -len("_kernel_time")], e["dur"])
        for e in events
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time")
    )
    totals = dict.fromkeys(sorted(names), 0.0)
    span_index, previous = 0, None
    for ts, name, dur in kernels:
        while span_index < len(run_spans) and ts > run_spans[span_index][1]:
            span_index, previous = span_index + 1, None
        if span_index >= len(run_spans) or ts < run_spans[span_index][0]:
            continue  # a warm-up run
        owner = name if name in names else previous
        if owner is None:  # an unnamed kernel before any named one
            owner = next((n for _, n, _ in kernels if n in names), None)
        if owner is not None:
            totals[owner] += dur / 1000.0  # us -> ms
            previous = owner
    count = max(len(run_spans), 1)
    nodes = {n: t / count for n, t in totals.items()}
    return {
        "format": FORMAT,
        "runtime": f"onnxruntime {ort.__version__}",
        "machine": platform.machine(),
        "runs": runs,
        "threads": threads,
        "opt_level": opt_level,
        "total_ms": statistics.median(walls),
        "kernel_ms": sum(nodes.values()),
        "nodes": nodes,
    }


def calibrated(doc: dict, wall_ms: float) -> dict:
    """The profile with its node times scaled so they add up to `wall_ms`, the model's median wall
    time without the profiler: kernel times leave out per-run overhead and include the profiler's
    own, so unscaled sums drift from what a half takes when it runs (the planner predicts those)."""
    kernel = sum(doc["nodes"].values())
    scale = wall_ms / kernel if kernel > 0 else 1.0
    return {
        **doc,
        "nodes": {n: v * scale for n, v in doc["nodes"].items()},
        "kernel_ms": kernel * scale,
        "wall_ms": wall_ms,
        "scale": scale,
    }


def time_model(
    model, feeds: dict, runs: int = 20, threads: int = 1, opt_level: str = "basic", warmup: int = 3
) -> float:
    """Median wall time of one run in ms, without the profiler."""
    model_bytes = model if isinstance(model, bytes) else open(model, "rb").read()
    session = _session(model_bytes, threads, opt_level, None)
    return statistics.median(_wall_times(session, feeds, warmup, runs))


def _wall_times(session, feeds: dict, warmup: int, runs: int) -> list[float]:
    """Milliseconds of each of `runs` runs after `warmup` untimed ones."""
    for _ in range(warmup):
        session.run(None, feeds)
    walls = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, feeds)
        walls.append((time.perf_counter() - start) * 1000.0)
    return walls


def load_profile(path) -> dict:
    """A profile JSON, checked: a dict of node name -> non-negative ms. ValueError says what is wrong."""
    try:
        with open(path) as fh:
            doc = json.load(fh)
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read device profile {path}: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError(f"{path}: not an edgebuild split profile (format must be '{FORMAT}')")
    nodes = doc.get("nodes")
    if not isinstance(nodes, dict) or not all(
        isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0
        for k, v in nodes.items()
    ):
        raise ValueError(f"{path}: 'nodes' must map node names to milliseconds >= 0")
    return doc


def random_feeds(model_path: str, seed: int = 0) -> dict:
    """Inputs at the model's fixed shapes (profiling needs shapes, not real data)."""
    import onnxruntime as ort

    session = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    feeds = {}
    for value in session.get_inputs():
        if not all(isinstance(d, int) and d > 0 for d in value.shape):
            raise SystemExit(
                f"input '{value.name}' has a dynamic shape {value.shape}: profile a model with "
                f"fixed input shapes (the halves edgebuild writes have them)"
            )
        dtype = np.float32 if "float" in value.type else (np.int64 if "int64" in value.type else np.int32)
        feeds[value.name] = (
            rng.random(value.shape).astype(dtype) if "float" in value.type else np.zeros(value.shape, dtype)
        )
    return feeds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="per-node onnxruntime profile of a model, as the split planner's device profile JSON"
    )
    parser.add_argument("model")
    parser.add_argument("--out", required=True)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--opt-level", choices=sorted(LEVELS), default="basic")
    args = parser.parse_args(argv)
    feeds = random_feeds(args.model)
    doc = profile_model(args.model, feeds, args.runs, args.threads, args.opt_level)
    doc = calibrated(doc, time_model(args.model, feeds, args.runs, args.threads, args.opt_level))
    doc["model"] = os.path.basename(args.model)
    tmp = args.out + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(doc, fh, indent=1, sort_keys=True)
    os.replace(tmp, args.out)
    print(f"{len(doc['nodes'])} nodes, {doc['total_ms']:.3f} ms per run -> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
