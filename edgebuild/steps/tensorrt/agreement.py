"""How closely a lowered (FP16 / INT8) network follows the FP32 one, both run by onnxruntime."""
from __future__ import annotations

from pathlib import Path
from typing import Any


def session(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def cosine(a, b) -> float:
    import numpy as np

    a = a.astype(np.float64).ravel()
    b = b.astype(np.float64).ravel()
    denom = float(np.linalg.norm(a) * np.linalg.norm(b))
    if denom == 0.0:
        return 1.0 if not a.any() and not b.any() else 0.0
    return float(np.dot(a, b) / denom)


def compare(reference: Path, lowered: Path, feeds: list[dict]) -> dict[str, Any]:
    """Worst case over feeds and float outputs: max absolute error, max error relative to the
    output's largest magnitude, and the lowest cosine similarity."""
    import numpy as np

    ref, low = session(reference), session(lowered)
    names = [out.name for out in ref.get_outputs()]
    max_abs, max_rel, min_cos = 0.0, 0.0, 1.0
    for feed in feeds:
        for expected, got in zip(ref.run(names, feed), low.run(names, feed)):
            if expected.dtype.kind != "f":
                continue
            diff = float(np.max(np.abs(expected.astype(np.float64) - got.astype(np.float64)), initial=0.0))
            scale = float(np.max(np.abs(expected), initial=0.0)) or 1.0
            max_abs, max_rel = max(max_abs, diff), max(max_rel, diff / scale)
            min_cos = min(min_cos, cosine(expected, got))
    return {"max_abs_error": max_abs, "max_rel_error": max_rel, "min_cosine": min_cos, "samples": len(feeds)}
