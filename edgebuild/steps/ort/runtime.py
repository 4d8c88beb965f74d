"""onnxruntime sessions as the ort steps use them: declared threads, CPU provider, and load or run
failures blamed on the file that caused them (the source model, or the artifact a step made)."""

from __future__ import annotations

import os
from pathlib import Path

from edgebuild.steps.base import StepFailed

LEVELS = {"basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED", "all": "ORT_ENABLE_ALL"}


def session(
    path: Path,
    threads: int = 1,
    level: str | None = None,
    save_to: Path | None = None,
    what: str = "the model",
    profile_prefix: str | None = None,
):
    """An InferenceSession on the CPU; `what` names the file in the error when it does not load."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    if level is not None:
        options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, LEVELS[level])
    if save_to is not None:
        options.optimized_model_filepath = str(save_to)
    if profile_prefix is not None:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise StepFailed(f"onnxruntime cannot load {what}: {str(exc).splitlines()[0]}") from None


def zeros_feed(sess) -> dict:
    import numpy as np

    feed = {}
    for value in sess.get_inputs():
        shape = [d if isinstance(d, int) else 1 for d in value.shape]
        dtype = np.float16 if "float16" in value.type else np.float32 if "float" in value.type else np.int64
        feed[value.name] = np.zeros(shape, dtype=dtype)
    return feed


def smoke_run(path: Path, what: str = "the built artifact") -> None:
    """Load the artifact and run it once on zeros, so a broken artifact fails its own step, with
    the artifact (not the source) named."""
    sess = session(path, what=what)
    try:
        sess.run(None, zeros_feed(sess))
    except Exception as exc:
        raise StepFailed(f"{what} fails to run in onnxruntime: {str(exc).splitlines()[0]}") from None


def optimize_offline(src: Path, dst: Path, level: str) -> tuple[int, int]:
    import onnx

    before = len(onnx.load(str(src), load_external_data=False).graph.node)
    session(src, level=level, save_to=dst)
    return before, len(onnx.load(str(dst), load_external_data=False).graph.node)


def describe(path: Path) -> dict:
    from edgebuild.onnxinfo import describe_io

    return {"io": describe_io(path), "size_bytes": os.path.getsize(path)}


def host_arch() -> str:
    import platform

    machine = platform.machine().lower()
    return (
        "arm64"
        if machine in ("arm64", "aarch64")
        else "x86-64"
        if machine in ("x86_64", "amd64")
        else machine
    )
