"""tensorrt.prepare: the ONNX graph TensorRT's parser gets, made on any host.

Fixes input dimensions the model config pins (inputs without an optimization profile), folds
constants and removes dead or redundant nodes with onnxruntime's hardware-independent (basic)
graph optimizer, checks the result, and reports FP16 readiness."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from edgebuild.steps.base import Step, StepContext, StepFailed
from edgebuild.steps.tensorrt import calibration_data, fp16_readiness, model_io
from edgebuild.steps.tensorrt import profiles as profile_rules

READINESS_SAMPLES = 8


def _fix_input_dims(model, input_shapes: dict, keep_dynamic: set[str]) -> list[str]:
    """Pin dynamic dimensions from `input_shapes`, so shape arithmetic folds away; inputs that have
    an optimization profile stay dynamic."""
    pinned = []
    for vi in model_io.graph_inputs(model):
        if vi.name not in input_shapes or vi.name in keep_dynamic:
            continue
        wanted = [int(d) for d in input_shapes[vi.name]]
        dims = vi.type.tensor_type.shape.dim
        if len(dims) != len(wanted):
            raise StepFailed(
                f"input_shapes.{vi.name}: {len(wanted)} dimensions given, the model input has {len(dims)}"
            )
        for axis, (dim, size) in enumerate(zip(dims, wanted)):
            if dim.HasField("dim_value") and dim.dim_value > 0 and dim.dim_value != size:
                raise StepFailed(
                    f"input_shapes.{vi.name}: dimension {axis} is {dim.dim_value} in the model, not {size}"
                )
            dim.Clear()
            dim.dim_value = size
        pinned.append(vi.name)
    return pinned


def fold_constants(source: Path, target: Path) -> None:
    """onnxruntime's basic level: constant folding and redundant-node elimination, which produce
    standard ONNX ops only (the extended level would emit com.microsoft fusions)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(target)
    options.log_severity_level = 3
    try:
        ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for invalid graphs
        raise StepFailed(
            f"onnxruntime cannot load the model to fold its constants: {str(exc).splitlines()[0]}"
        ) from None


def _domains(model) -> set[str]:
    return {node.domain or "ai.onnx" for node in model.graph.node}


def _drop_unused_opsets(model) -> None:
    """onnxruntime declares every domain it knows when saving; keep the ones nodes use, so the
    coverage check and TensorRT's parser see only what the graph needs."""
    used = _domains(model) | {"ai.onnx"}
    kept = [imp for imp in model.opset_import if (imp.domain or "ai.onnx") in used]
    del model.opset_import[:]
    model.opset_import.extend(kept)


class TensorrtPrepareStep(Step):
    name = "tensorrt.prepare"
    version = "1"
    uses = ("onnx", "onnxruntime", "numpy")
    inputs = ("model", "calibration?")
    outputs = ("model.onnx",)

    def run(self, ctx: StepContext) -> dict[str, Any]:
        import onnx

        source = ctx.input("model")
        if source.is_dir() or source.suffix.lower() != ".onnx":
            raise StepFailed(
                f"{source.name}: the tensorrt recipe takes an ONNX model; export the model to ONNX first"
            )
        try:
            model = onnx.load(str(source))
        except Exception as exc:  # protobuf decode errors have no common base class
            raise StepFailed(f"{source.name}: not a readable ONNX model ({exc})") from None
        before = len(model.graph.node)
        keep_dynamic = profile_rules.covered_inputs(ctx.params.get("profiles"))
        pinned = _fix_input_dims(model, ctx.params.get("input_shapes") or {}, keep_dynamic)

        target = ctx.output("model.onnx")
        with tempfile.TemporaryDirectory(prefix="edgebuild-trt-") as tmp:
            pinned_path = Path(tmp) / "pinned.onnx"
            onnx.save(model, str(pinned_path))
            fold_constants(pinned_path, target)

        prepared = onnx.load(str(target))
        new_domains = _domains(prepared) - _domains(model)
        if new_domains:
            raise StepFailed(
                f"constant folding introduced operators from {', '.join(sorted(new_domains))}; "
                f"this onnxruntime version's basic optimizer is not TensorRT-safe"
            )
        _drop_unused_opsets(prepared)
        prepared = onnx.shape_inference.infer_shapes(prepared)
        try:
            onnx.checker.check_model(prepared)
        except onnx.checker.ValidationError as exc:
            raise StepFailed(f"prepared model fails the ONNX checker: {str(exc).splitlines()[0]}") from None
        onnx.save(prepared, str(target))

        io = model_io.describe_io(prepared)
        feeds = None
        if "calibration" in ctx.inputs:
            arrays = calibration_data.load(ctx.input("calibration"))
            feeds = list(calibration_data.feeds(io["inputs"], arrays, READINESS_SAMPLES))
        readiness = fp16_readiness.report(prepared, target, feeds)
        for item in readiness["weights_overflow"]:
            ctx.log.warning(
                "fp16: constant %s has %d values beyond +-65504 (max %.3g)",
                item["name"],
                item["count"],
                item["max_abs"],
            )
        for item in readiness.get("activations_overflow", []):
            ctx.log.warning("fp16: activation %s reaches %.3g, beyond +-65504", item["name"], item["max_abs"])
        return {
            "io": io,
            "metrics": {"nodes_before": before, "nodes_after": len(prepared.graph.node)},
            "pinned_inputs": pinned,
            "opsets": {imp.domain or "ai.onnx": imp.version for imp in prepared.opset_import},
            "fp16_readiness": readiness,
        }
