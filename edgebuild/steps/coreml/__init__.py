"""Core ML packages (`.mlpackage`, ML Program) built and checked on Linux.

Steps: coreml.convert (ONNX -> onnx2torch -> torch.jit.trace -> coremltools), coreml.compress
(coremltools.optimize weight compression), coreml.inspect (spec load, I/O match with the source
model, MIL op list as coverage, LoadModel.swift) and coreml.verify (the traced PyTorch
intermediate against onnxruntime on the evaluation set; the package itself on macOS).
Only the standard library is imported here; torch and coremltools load inside `run`.
"""
from __future__ import annotations

from .compress import CoreMLCompress
from .convert import CoreMLConvert
from .inspect_package import CoreMLInspect
from .swift_snippet import swift_snippet
from .verify import CoreMLVerify

STEPS = {step.name: step for step in (CoreMLConvert, CoreMLCompress, CoreMLInspect, CoreMLVerify)}

__all__ = ["STEPS", "swift_snippet"]
