"""TensorRT engines per NVIDIA device class (recipe `tensorrt`).

prepare (fold constants, pin shapes, FP16 readiness) -> coverage.check (route "tensorrt") ->
quantize (FP16 graph or INT8 Q/DQ, checked against TensorRT's Q/DQ rules) -> selftest ->
config (builder_config.json) -> build (real TensorRT; `Deferred` without TensorRT or a GPU of the
device's compute capability). Only the build step needs TensorRT.
"""

from edgebuild.steps.tensorrt.build import TensorrtBuildStep
from edgebuild.steps.tensorrt.builder_config import TensorrtConfigStep
from edgebuild.steps.tensorrt.prepare import TensorrtPrepareStep
from edgebuild.steps.tensorrt.quantize import TensorrtQuantizeStep
from edgebuild.steps.tensorrt.selftest import TensorrtSelftestStep
from edgebuild.steps.tensorrt.validation import validate_target

STEPS = {
    step.name: step
    for step in (
        TensorrtPrepareStep,
        TensorrtQuantizeStep,
        TensorrtSelftestStep,
        TensorrtConfigStep,
        TensorrtBuildStep,
    )
}

__all__ = ["STEPS", "validate_target"]
