"""The fp32 (offline-optimized) and fp16 onnxruntime artifacts."""

from __future__ import annotations

from edgebuild.steps.base import Step, StepContext, StepFailed
from edgebuild.steps.ort.runtime import LEVELS, describe, optimize_offline, smoke_run


class OrtOptimizeStep(Step):
    """An offline-optimized fp32 model for onnxruntime. params: opt_level (basic|extended|all);
    `extended` and `all` may fuse into onnxruntime-specific ops, which is fine for this runtime."""

    name = "ort.optimize"
    version = "1"
    uses = ("onnx", "onnxruntime")
    inputs = ("model",)
    outputs = ("model.onnx",)

    def run(self, ctx: StepContext) -> dict:
        level = ctx.params.get("opt_level", "extended")
        if level not in LEVELS:
            raise StepFailed(f"opt_level '{level}' is not one of {', '.join(LEVELS)}")
        out = ctx.output("model.onnx")
        optimize_offline(ctx.input("model"), out, level)
        smoke_run(out, what="the fp32 artifact")
        return describe(out)


class OrtFp16Step(Step):
    """fp16 weights and activations; inputs and outputs stay float32 so callers need not change."""

    name = "ort.fp16"
    version = "1"
    uses = ("onnx", "onnxruntime")
    inputs = ("model",)
    outputs = ("model.onnx",)

    def run(self, ctx: StepContext) -> dict:
        import onnx
        from onnxruntime.transformers.float16 import convert_float_to_float16

        model = onnx.load(str(ctx.input("model")))
        half = convert_float_to_float16(
            model,
            keep_io_types=bool(ctx.params.get("keep_io_types", True)),
            op_block_list=list(ctx.params.get("op_block_list", [])) or None,
        )
        out = ctx.output("model.onnx")
        onnx.save(half, str(out))
        smoke_run(out, what="the fp16 artifact")
        return describe(out)
