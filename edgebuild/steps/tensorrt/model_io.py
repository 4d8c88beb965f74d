"""Reading an ONNX graph's inputs and outputs: names, shapes and dtypes, in the metadata shape the
bundle manifest uses, plus turning dynamic dimensions into concrete ones when a run needs them."""

from __future__ import annotations

from typing import Any

from edgebuild.steps.base import StepFailed

# ONNX TensorProto element types -> numpy dtype names (the ones an edge model's I/O can carry)
ONNX_DTYPES = {
    1: "float32",
    2: "uint8",
    3: "int8",
    5: "int16",
    6: "int32",
    7: "int64",
    9: "bool",
    10: "float16",
    11: "float64",
    12: "uint32",
    13: "uint64",
    16: "bfloat16",
}


def _dims(value_info) -> list[int | str | None]:
    dims: list[int | str | None] = []
    for dim in value_info.type.tensor_type.shape.dim:
        if dim.HasField("dim_value") and dim.dim_value > 0:
            dims.append(int(dim.dim_value))
        elif dim.HasField("dim_param") and dim.dim_param:
            dims.append(dim.dim_param)
        else:
            dims.append(None)
    return dims


def graph_inputs(model) -> list:
    """Real inputs only: old exporters also list every initializer as a graph input."""
    initializers = {init.name for init in model.graph.initializer}
    return [vi for vi in model.graph.input if vi.name not in initializers]


def describe(value_info) -> dict[str, Any]:
    elem = value_info.type.tensor_type.elem_type
    return {
        "name": value_info.name,
        "shape": _dims(value_info),
        "dtype": ONNX_DTYPES.get(elem, f"onnx:{elem}"),
    }


def describe_io(model) -> dict[str, list[dict[str, Any]]]:
    return {
        "inputs": [describe(vi) for vi in graph_inputs(model)],
        "outputs": [describe(vi) for vi in model.graph.output],
    }


def is_static(shape: list) -> bool:
    return all(isinstance(d, int) and d > 0 for d in shape)


def concrete_shape(spec: dict[str, Any], profiles: list[dict], input_shapes: dict | None) -> list[int]:
    """A runnable shape for one input: the model's own static shape, else the user's input_shapes,
    else the `opt` shape of the first optimization profile naming it."""
    if is_static(spec["shape"]):
        return list(spec["shape"])
    if input_shapes and spec["name"] in input_shapes:
        return [int(d) for d in input_shapes[spec["name"]]]
    for profile in profiles:
        if spec["name"] in profile:
            return [int(d) for d in profile[spec["name"]]["opt"]]
    raise StepFailed(
        f"input '{spec['name']}' has dynamic shape {spec['shape']}: give it a shape in "
        f"models.<model>.input_shapes or an optimization profile in the target's `profiles`"
    )
