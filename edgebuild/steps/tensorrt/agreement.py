"""How closely a lowered (FP16 / INT8) network follows the FP32 one, both run by onnxruntime."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def session(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def compare(reference: Path, lowered: Path, feeds: list[dict]) -> dict[str, Any]:
    """Worst case over feeds and float outputs: max absolute error, max error relative to the
    output's largest magnitude, and the lowest cosine similarity (each output taken whole)."""
    from edgebuild.metrics import deviation

    ref, low = session(reference), session(lowered)
    names = [out.name for out in ref.get_outputs()]
    max_abs, max_rel, min_cos = 0.0, 0.0, 1.0
    for feed in feeds:
        for expected, got in zip(ref.run(names, feed), low.run(names, feed)):
            if expected.dtype.kind != "f":
                continue
            err = deviation(expected, got)
            max_abs, max_rel = max(max_abs, err["max_abs"]), max(max_rel, err["max_rel"])
            min_cos = min(min_cos, err["cosine"])
    return {"max_abs_error": max_abs, "max_rel_error": max_rel, "min_cosine": min_cos, "samples": len(feeds)}
