"""ONNX Runtime artifacts: offline-optimized fp32, fp16, int8 (static QDQ calibrated on the model's
data, its configuration chosen by measurement against fp32; or dynamic), and their verification
against the fp32 source on every output.

runtime.py: sessions and smoke runs; convert.py: fp32 and fp16 steps; quantize.py: one int8 model;
search.py: choosing the int8 configuration by measurement; int8.py: the int8 step and its latency
gate; verify.py: the verification step.
"""

from __future__ import annotations

from edgebuild.steps.ort.convert import OrtFp16Step, OrtOptimizeStep
from edgebuild.steps.ort.int8 import OrtQuantizeStep
from edgebuild.steps.ort.runtime import optimize_offline, smoke_run
from edgebuild.steps.ort.verify import OrtVerifyStep

__all__ = ["optimize_offline", "smoke_run", "STEPS"]

STEPS = {s.name: s for s in (OrtOptimizeStep, OrtFp16Step, OrtQuantizeStep, OrtVerifyStep)}
