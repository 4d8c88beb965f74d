"""The TensorRT route: ONNX ops, dtypes and restrictions of TensorRT's ONNX parser (10.15 table).

Passing this check does not prove the engine builds; only a build on the device class does.
"""

from __future__ import annotations

from typing import Callable

from .graph_walk import NodeInfo, WalkedGraph
from .partition import RESTRICTION, SUPPORTED, UNSUPPORTED
from .report import Issue, RouteResult
from .tables import load_table

TABLE = "tensorrt-10.15-onnx-ops.tsv"
OPSET_RANGE = {"10": (9, 24), "11": (9, 25)}  # by TensorRT major version (facts/tensorrt.md)
TRT_DTYPES = {
    "float32": "FP32",
    "float16": "FP16",
    "bfloat16": "BF16",
    "int32": "INT32",
    "int64": "INT64",
    "int8": "INT8",
    "uint8": "UINT8",
    "bool": "BOOL",
    "float8e4m3fn": "FP8",
    "float4e2m1": "FP4",
    "int4": "INT4",
}
DATA_INPUT = {"Where": 1}  # which input carries the op's main type (default 0)
RESIZE_OK = {
    "coordinate_transformation_mode": {
        "half_pixel",
        "pytorch_half_pixel",
        "tf_half_pixel_for_nn",
        "asymmetric",
        "align_corners",
    },
    "mode": {"nearest", "linear"},
    "nearest_mode": {"floor", "ceil", "round_prefer_floor", "round_prefer_ceil"},
    "keep_aspect_ratio_policy": {"stretch"},
}
MAX_TOPK = 3840


def _const_input(node: NodeInfo, i: int):
    t = node.inputs[i] if i < len(node.inputs) else None
    return t


def _zero_point_zero(node: NodeInfo) -> str | None:
    zp = _const_input(node, 2)
    if zp is None:
        return None
    if not zp.constant or zp.value is None:
        return "zero point must be a constant 0"
    return (
        None
        if all(v == 0 for v in zp.value)
        else f"zero point {zp.value[:4]} is not 0 (use symmetric quantization)"
    )


def _pooling(node: NodeInfo) -> str | None:
    kernel = node.attrs.get("kernel_shape") or []
    if len(kernel) not in (2, 3):
        return f"{len(kernel)}-D pooling (2-D or 3-D only)"
    if any(d != 1 for d in node.attrs.get("dilations") or []):
        return "dilations must be empty or all ones"
    if node.op_type == "MaxPool" and len(node.outputs) > 1 and node.outputs[1] is not None:
        return "the Indices output is unsupported"
    return None


def _axes_constant(node: NodeInfo) -> str | None:
    axes = _const_input(node, 1)
    return None if axes is None or axes.constant else "axes must be an initializer (a build-time constant)"


def _topk(node: NodeInfo) -> str | None:
    if node.attrs.get("sorted", 1) != 1:
        return "sorted must be 1"
    k = _const_input(node, 1)
    if k is not None and k.constant and k.value and k.value[0] >= MAX_TOPK:
        return f"K = {k.value[0]} (must be < {MAX_TOPK})"
    return None if k is None or k.constant else "K must be a build-time constant"


def _resize(node: NodeInfo) -> str | None:
    if node.attrs.get("antialias"):
        return "antialiasing is not supported"
    for key, allowed in RESIZE_OK.items():
        value = node.attrs.get(key)
        if value is not None and value not in allowed:
            return f"{key} = {value!r} is not supported"
    return None


def _lstm(node: NodeInfo) -> str | None:
    if node.attrs.get("input_forget", 0) or node.attrs.get("layout", 0):
        return "input_forget and layout must be 0"
    return None


def _scatter_nd(node: NodeInfo) -> str | None:
    red = node.attrs.get("reduction", "none")
    return None if red == "none" else f"reduction {red!r} is not supported"


def _dropout(node: NodeInfo) -> str | None:
    training = _const_input(node, 2)
    if training is None:
        return None
    if not training.constant or training.value is None or any(training.value):
        return "training_mode must be an initializer that is False"
    return None


def _constant(node: NodeInfo) -> str | None:
    bad = [a for a in ("sparse_value", "value_string", "value_strings") if a in node.attrs]
    return f"attribute {bad[0]} is unsupported" if bad else None


def _layer_norm(node: NodeInfo) -> str | None:
    extra = [o for o in node.outputs[1:] if o is not None]
    return "only the first output Y is supported" if extra else None


def _static_input(node: NodeInfo) -> str | None:
    t = node.inputs[0] if node.inputs else None
    return None if t is None or t.static else "input must have static dimensions"


def _grid_sample(node: NodeInfo) -> str | None:
    t = node.inputs[0] if node.inputs else None
    return None if t is None or t.shape is None or len(t.shape) == 4 else "input must be 4-D"


def _input_constant(index: int, what: str) -> Callable[[NodeInfo], str | None]:
    def rule(node: NodeInfo) -> str | None:
        t = _const_input(node, index)
        return None if t is None or t.constant else f"{what} must be a build-time constant"

    return rule


RULES: dict[str, Callable[[NodeInfo], str | None]] = {
    "QuantizeLinear": _zero_point_zero,
    "DequantizeLinear": _zero_point_zero,
    "AveragePool": _pooling,
    "MaxPool": _pooling,
    "LpPool": _pooling,
    "Squeeze": _axes_constant,
    "Unsqueeze": _axes_constant,
    "TopK": _topk,
    "Resize": _resize,
    "LSTM": _lstm,
    "ScatterND": _scatter_nd,
    "Dropout": _dropout,
    "Constant": _constant,
    "LayerNormalization": _layer_norm,
    "EyeLike": _static_input,
    "GridSample": _grid_sample,
    "CumSum": _input_constant(1, "axis"),
    "OneHot": _input_constant(1, "depth"),
    "STFT": _input_constant(1, "frame_step"),
}
for _op in (
    "ReduceL1",
    "ReduceL2",
    "ReduceLogSum",
    "ReduceLogSumExp",
    "ReduceMax",
    "ReduceMean",
    "ReduceMin",
    "ReduceProd",
    "ReduceSum",
    "ReduceSumSquare",
):
    RULES[_op] = _axes_constant


def check_node(node: NodeInfo, rows: dict[str, dict]) -> tuple[str, str]:
    if node.domain:
        return UNSUPPORTED, f"domain '{node.domain}' is not parsed by TensorRT (needs a plugin)"
    row = rows.get(node.op_type)
    if row is None or row["supported"] != "Y":
        return UNSUPPORTED, f"{node.op_type} is not supported by TensorRT's ONNX parser"
    allowed = {d.strip() for d in row["dtypes"].split(",") if d.strip()}
    idx = DATA_INPUT.get(node.op_type, 0)
    data = node.inputs[idx] if idx < len(node.inputs) else None
    if allowed and data is not None and data.dtype:
        trt = TRT_DTYPES.get(data.dtype)
        if trt not in allowed:
            return RESTRICTION, f"input type {data.dtype} (supports {', '.join(sorted(allowed))})"
    rule = RULES.get(node.op_type)
    problem = rule(node) if rule else None
    return (RESTRICTION, problem) if problem else (SUPPORTED, "")


def check(graph: WalkedGraph, settings: dict) -> RouteResult:
    table = load_table(TABLE)
    rows = {r["op"]: r for r in table.rows}
    result = RouteResult(table=f"{TABLE}: {table.source[0]}")
    version = str(settings.get("tensorrt_version") or "10.15")
    major = version.split(".")[0]
    low, high = OPSET_RANGE.get(major, OPSET_RANGE["10"])
    opset = graph.opsets.get("")
    if opset is not None and not low <= opset <= high:
        result.issues.append(
            Issue("error", f"opset {opset} is outside TensorRT {version}'s range {low}-{high}")
        )
    if not version.startswith("10.15"):
        result.notes.append(f"operator table is for TensorRT 10.15; target asks for {version}")
    for t in graph.dynamic_inputs:
        result.issues.append(
            Issue(
                "warning",
                f"input '{t.name}' has dynamic shape {list(t.shape or [])}: the engine "
                "needs an optimization profile (min/opt/max) or input_shapes",
            )
        )
    result.notes.append("passing the table check does not prove the engine builds")
    result.verdicts = [(n, *check_node(n, rows)) for n in graph.nodes]
    return result
