"""onnxruntime as the reference, and the error measures the Core ML steps gate on."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from edgebuild.steps.base import StepFailed


class OnnxRuntimeReference:
    """One onnxruntime CPU session on the source model, reused for every batch."""

    def __init__(self, model_path: Path):
        import onnxruntime as ort

        self.model_path = model_path
        options = ort.SessionOptions()
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise StepFailed(f"{model_path.name}: onnxruntime cannot load the source model for reference ({_first_line(exc)})") from None

    def run(self, inputs: dict[str, Any]) -> list[Any]:
        try:
            return self.session.run(None, inputs)
        except Exception as exc:
            raise StepFailed(f"{self.model_path.name}: onnxruntime cannot run the source model for reference ({_first_line(exc)})") from None


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def onnxruntime_outputs(model_path: Path, inputs: dict[str, Any]) -> list[Any]:
    return OnnxRuntimeReference(model_path).run(inputs)


def errors(reference, candidate) -> dict[str, float]:
    """Max absolute error, error relative to the reference's range, and cosine similarity."""
    import numpy as np

    ref = np.asarray(reference, dtype=np.float64).ravel()
    got = np.asarray(candidate, dtype=np.float64).ravel()
    if ref.shape != got.shape:
        return {"max_abs": float("inf"), "max_rel": float("inf"), "cosine": 0.0}
    diff = np.abs(ref - got)
    scale = max(float(np.abs(ref).max(initial=0.0)), 1e-12)
    norms = float(np.linalg.norm(ref) * np.linalg.norm(got))
    cosine = float(ref @ got / norms) if norms > 0 else float(np.array_equal(ref, got))
    return {"max_abs": float(diff.max(initial=0.0)), "max_rel": float(diff.max(initial=0.0) / scale), "cosine": cosine}


def within(reference, candidate, atol: float, rtol: float) -> bool:
    import numpy as np
    if np.shape(reference) != np.shape(candidate):
        return False
    return bool(np.allclose(np.asarray(candidate, dtype=np.float64), np.asarray(reference, dtype=np.float64), atol=atol, rtol=rtol, equal_nan=True))
