"""Core ML packages (`.mlpackage`, ML Program) built and checked on Linux.

Steps: coreml.convert (ONNX -> onnx2torch -> torch.jit.trace -> coremltools), coreml.compress
(coremltools.optimize weight compression), coreml.inspect (spec load, I/O match with the source
model, MIL op list as coverage, LoadModel.swift) and coreml.verify (the traced PyTorch
intermediate against onnxruntime on the evaluation set; the package itself on macOS).
Only the standard library is imported here; torch and coremltools load inside `run`.
"""

from __future__ import annotations

from .compress import CoremlCompressStep
from .convert import CoremlConvertStep
from .inspect_package import CoremlInspectStep
from .swift_snippet import swift_snippet
from .verify import CoremlVerifyStep

STEPS = {
    step.name: step for step in (CoremlConvertStep, CoremlCompressStep, CoremlInspectStep, CoremlVerifyStep)
}

__all__ = ["STEPS", "swift_snippet"]
