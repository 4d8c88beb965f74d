"""onnxruntime as the reference the Core ML steps are measured against (the measures: edgebuild.metrics)."""

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
            raise StepFailed(
                f"{model_path.name}: onnxruntime cannot load the source model for reference ({_first_line(exc)})"
            ) from None

    def run(self, inputs: dict[str, Any]) -> list[Any]:
        try:
            return self.session.run(None, inputs)
        except Exception as exc:
            raise StepFailed(
                f"{self.model_path.name}: onnxruntime cannot run the source model for reference ({_first_line(exc)})"
            ) from None


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def onnxruntime_outputs(model_path: Path, inputs: dict[str, Any]) -> list[Any]:
    return OnnxRuntimeReference(model_path).run(inputs)
