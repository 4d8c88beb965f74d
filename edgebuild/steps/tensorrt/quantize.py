"""tensorrt.quantize: lower the prepared network to the target precision in the graph itself.

- fp32: unchanged.
- fp16: float tensors and weights become FP16 with FP32 inputs/outputs kept (TensorRT 11 is
  strongly typed: precision comes from the network; 10.x gets the FP16 flag as well).
- int8: explicit quantization, Q/DQ pairs from onnxruntime's static quantizer with symmetric
  activations and weights, no bias quantization, calibrated on the model's calibration data;
  the result is checked against TensorRT's Q/DQ rules before it is accepted.
Every lowering is measured against FP32 with onnxruntime."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from edgebuild.steps.base import Step, StepContext, StepFailed
from edgebuild.steps.tensorrt import agreement, calibration_data, model_io, qdq_rules
from edgebuild.steps.tensorrt import profiles as profile_rules

AGREEMENT_SAMPLES = 16


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over a list of feeds."""

    def __init__(self, feeds: list[dict]) -> None:
        self._feeds = iter(feeds)

    def get_next(self):
        return next(self._feeds, None)


def quantize_int8(source: Path, target: Path, feeds: list[dict], per_channel: bool) -> None:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    quantize_static(
        str(source),
        str(target),
        _Reader(feeds),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
        per_channel=per_channel,
        calibrate_method=CalibrationMethod.MinMax,
        extra_options={"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False},
    )


def convert_fp16(source: Path, target: Path) -> None:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(source))
    # keep_io_types: callers keep feeding FP32; disable_shape_infer: the prepared model is inferred already
    converted = convert_float_to_float16(model, keep_io_types=True, disable_shape_infer=True)
    onnx.save(converted, str(target))


class TensorrtQuantizeStep(Step):
    name = "tensorrt.quantize"
    version = "1"
    uses = ("onnx", "onnxruntime", "numpy")
    inputs = ("model", "calibration?")
    outputs = ("model.onnx",)

    def required_inputs(self, params: dict[str, Any]) -> set[str]:
        return {"model", "calibration"} if params.get("precision") == "int8" else {"model"}

    def run(self, ctx: StepContext) -> dict[str, Any]:
        import onnx

        source, target = ctx.input("model"), ctx.output("model.onnx")
        precision = ctx.params.get("precision", "fp32")
        model = onnx.load(str(source))
        io = model_io.describe_io(model)
        feeds = self._feeds(ctx, io["inputs"], precision)

        if precision == "fp32":
            shutil.copyfile(source, target)
            return {"io": io, "metrics": {}, "precision": precision}
        if precision == "fp16":
            convert_fp16(source, target)
        elif precision == "int8":
            quantize_int8(source, target, feeds, bool(ctx.params.get("per_channel", True)))
            problems = qdq_rules.check(onnx.load(str(target)))
            if problems:
                raise StepFailed(
                    f"int8 model breaks TensorRT's Q/DQ rules: {problems[0]}"
                    + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
                )
        else:
            raise StepFailed(f"precision: '{precision}' is not one of fp32, fp16, int8")

        lowered = onnx.load(str(target))
        metrics = agreement.compare(source, target, feeds[:AGREEMENT_SAMPLES])
        metrics["qdq_nodes"] = sum(
            n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in lowered.graph.node
        )
        metrics["size_bytes"] = target.stat().st_size
        return {"io": model_io.describe_io(lowered), "metrics": metrics, "precision": precision}

    def _feeds(self, ctx: StepContext, inputs: list[dict], precision: str) -> list[dict]:
        if "calibration" in ctx.inputs:
            limit = int(ctx.params.get("calibration_samples", 64))
            return list(
                calibration_data.feeds(inputs, calibration_data.load(ctx.input("calibration")), limit)
            )
        if precision == "int8":
            raise StepFailed(
                "precision int8 needs calibration data: set `calibration` on the target's model "
                "(an .npz with one array per input, batch first)"
            )
        profiles = profile_rules.normalize(ctx.params.get("profiles"))
        if precision == "fp32":
            return []
        return [calibration_data.synthetic_feed(inputs, profiles, seed=seed) for seed in range(4)]
