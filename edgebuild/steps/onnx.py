"""ONNX preparation steps shared by every recipe that starts from an ONNX graph."""

from __future__ import annotations

from edgebuild.steps.base import Step, StepContext, StepFailed


class OnnxCheckStep(Step):
    """Validate the model, fix dynamic dimensions from `input_shapes`, run shape inference.

    params: input_shapes {input: [dims]}; static_shapes (bool): fail when a dimension stays dynamic.
    """

    name = "onnx.check"
    version = "2"
    uses = ("onnx",)
    inputs = ("model",)
    outputs = ("model.onnx",)

    def run(self, ctx: StepContext) -> dict:
        import onnx

        from edgebuild.onnxinfo import describe_io, mark_negative_dims_dynamic

        source = ctx.input("model")
        try:
            model = onnx.load(str(source))
        except Exception as exc:
            raise StepFailed(f"cannot read {source.name} as ONNX: {exc}") from None
        try:
            onnx.checker.check_model(model)
        except onnx.checker.ValidationError as exc:
            raise StepFailed(f"invalid ONNX model: {str(exc).splitlines()[0]}") from None
        mark_negative_dims_dynamic(model)  # Paddle exports write -1 for dynamic axes
        _fix_shapes(model, ctx.params.get("input_shapes") or {})
        try:
            model = onnx.shape_inference.infer_shapes(
                model, check_type=True, strict_mode=False, data_prop=True
            )
        except Exception as exc:
            raise StepFailed(f"shape inference failed: {str(exc).splitlines()[0]}") from None
        io = describe_io(model)
        if ctx.params.get("static_shapes"):
            for value in io["inputs"]:
                dynamic = [d for d in value["shape"] if not isinstance(d, int)]
                if dynamic:
                    raise StepFailed(
                        f"input '{value['name']}' has dynamic dimensions {dynamic}; this target needs "
                        f"static shapes: set input_shapes = {{ {value['name']} = [...] }} on the model"
                    )
        onnx.save(model, str(ctx.output("model.onnx")))
        ops: dict[str, int] = {}
        for node in model.graph.node:
            key = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"
            ops[key] = ops.get(key, 0) + 1
        params = sum(int(_numel(t)) for t in model.graph.initializer)
        return {
            "io": io,
            "opset": {o.domain or "ai.onnx": o.version for o in model.opset_import},
            "ops": ops,
            "parameters": params,
            "producer": model.producer_name or None,
        }


def _numel(tensor) -> int:
    n = 1
    for d in tensor.dims:
        n *= d
    return n


def _fix_shapes(model, shapes: dict) -> None:
    inputs = {v.name: v for v in model.graph.input}
    for name, dims in shapes.items():
        if name not in inputs:
            raise StepFailed(
                f"input_shapes names '{name}', which is not a model input (inputs: {', '.join(inputs)})"
            )
        shape = inputs[name].type.tensor_type.shape
        if len(shape.dim) != len(dims):
            raise StepFailed(
                f"input_shapes.{name} has {len(dims)} dimensions, the model input has {len(shape.dim)}"
            )
        for dim, value in zip(shape.dim, dims):
            if dim.HasField("dim_value") and dim.dim_value > 0 and dim.dim_value != value:
                raise StepFailed(
                    f"input_shapes.{name} = {dims} contradicts the model's fixed shape "
                    f"{[d.dim_value if d.dim_value > 0 else (d.dim_param or '?') for d in shape.dim]}"
                )
            dim.Clear()
            dim.dim_value = value


class OnnxSimplifyStep(Step):
    """Constant folding and redundant-node elimination with onnxruntime's provider-independent
    (basic) graph optimizations; the result is still a portable ONNX graph."""

    name = "onnx.simplify"
    version = "1"
    uses = ("onnx", "onnxruntime")
    inputs = ("model",)
    outputs = ("model.onnx",)

    def run(self, ctx: StepContext) -> dict:
        from edgebuild.steps.ort import optimize_offline

        before, after = optimize_offline(ctx.input("model"), ctx.output("model.onnx"), "basic")
        return {"nodes_before": before, "nodes_after": after}


STEPS = {OnnxCheckStep.name: OnnxCheckStep, OnnxSimplifyStep.name: OnnxSimplifyStep}
