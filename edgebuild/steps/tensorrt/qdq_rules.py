"""TensorRT's rules for explicitly quantized (Q/DQ) networks, checked on the ONNX graph:

- QuantizeLinear / DequantizeLinear scales are constant and positive;
- zero points are constant and 0 (TensorRT quantizes symmetrically only);
- the quantized type (QuantizeLinear's output, DequantizeLinear's input) is INT8, FP8, INT4 or FP4:
  an INT32 bias fed to DequantizeLinear or a UINT8 tensor is rejected by the parser.
"""

from __future__ import annotations

QUANTIZED_TYPES = {3: "INT8", 17: "FP8", 22: "INT4", 23: "FP4"}
TYPE_NAMES = {
    1: "FLOAT",
    2: "UINT8",
    3: "INT8",
    6: "INT32",
    7: "INT64",
    10: "FLOAT16",
    21: "UINT4",
    17: "FP8",
    22: "INT4",
    23: "FP4",
}


def _constants(model) -> dict:
    from onnx import numpy_helper

    values = {init.name: init for init in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    values[node.output[0]] = attr.t
    return {name: numpy_helper.to_array(tensor) for name, tensor in values.items()}


def _elem_types(model) -> dict[str, int]:
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    graph = inferred.graph
    types = {
        vi.name: vi.type.tensor_type.elem_type for vi in [*graph.input, *graph.output, *graph.value_info]
    }
    types.update({init.name: init.data_type for init in graph.initializer})
    return types


def check(model) -> list[str]:
    """Problems, one line per offending node; empty when TensorRT can parse the Q/DQ nodes."""
    constants = _constants(model)
    types = _elem_types(model)
    problems: list[str] = []
    for node in model.graph.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear") or node.domain not in ("", "ai.onnx"):
            continue
        label = f"{node.op_type} '{node.name or node.output[0]}'"
        scale_name = node.input[1]
        zero_point = node.input[2] if len(node.input) > 2 and node.input[2] else None
        if scale_name not in constants:
            problems.append(f"{label}: scale '{scale_name}' is not a constant")
        elif (constants[scale_name] <= 0).any():
            problems.append(f"{label}: scale '{scale_name}' has non-positive values")
        if zero_point is not None:
            if zero_point not in constants:
                problems.append(f"{label}: zero point '{zero_point}' is not a constant")
            elif constants[zero_point].any():
                problems.append(f"{label}: zero point '{zero_point}' is not 0 (asymmetric quantization)")
        quantized = node.output[0] if node.op_type == "QuantizeLinear" else node.input[0]
        elem = types.get(quantized)
        if elem is None and node.op_type == "QuantizeLinear":
            elem = types.get(zero_point) if zero_point else _output_dtype_attr(node)
        if elem not in QUANTIZED_TYPES:
            where = "output" if node.op_type == "QuantizeLinear" else "input"
            problems.append(
                f"{label}: {where} '{quantized}' is {TYPE_NAMES.get(elem, elem)}, "
                f"TensorRT needs {'/'.join(QUANTIZED_TYPES.values())}"
            )
    return problems


def _output_dtype_attr(node) -> int:
    for attr in node.attribute:
        if attr.name == "output_dtype" and attr.i:
            return attr.i
    return 2  # QuantizeLinear without a zero point defaults to UINT8
