"""The TFLite route: ONNX -> onnx2tf -> TFLite. A node converts when onnx2tf has a converter for
its op; the table also says which TFLite builtins the conversion typically emits (used by the
Edge TPU prediction).
"""
from __future__ import annotations

from functools import lru_cache

from .graph_walk import NodeInfo, WalkedGraph
from .partition import RESTRICTION, SUPPORTED, UNSUPPORTED
from .report import Issue, RouteResult
from .tables import load_table

TABLE = "tflite-onnx2tf-ops.tsv"
UNKNOWN = "?"
# Element types TFLite (and TensorFlow underneath onnx2tf) have no tensors or kernels for.
NO_TFLITE_TYPE = {"bfloat16", "float8e4m3fn", "float8e4m3fnuz", "float8e5m2", "float8e5m2fnuz", "float8e8m0",
                  "float4e2m1", "int4", "uint4", "int2", "uint2"}


@lru_cache(maxsize=None)
def onnx2tf_rows() -> dict[str, dict]:
    return {r["op"]: r for r in load_table(TABLE).rows}


def tflite_ops_for(node: NodeInfo) -> list[str] | None:
    """TFLite builtins predicted for one ONNX node ([] = folded away, None = not transcribed)."""
    row = onnx2tf_rows().get(node.op_type)
    if row is None or row["tflite_ops"] == UNKNOWN:
        return None
    ops = [o for o in row["tflite_ops"].split(",") if o]
    a = node.attrs
    if node.op_type == "Conv":
        x = node.inputs[0]
        channels = x.shape[1] if x is not None and x.shape and len(x.shape) > 1 else None
        kernel = a.get("kernel_shape") or []
        if len(kernel) == 3 or (x is not None and x.shape and len(x.shape) == 5):
            return ["CONV_3D"]
        if a.get("group", 1) > 1 and a.get("group") == channels:
            return ["DEPTHWISE_CONV_2D"]
    elif node.op_type == "MatMul":
        w = node.inputs[1] if len(node.inputs) > 1 else None
        if w is not None and w.constant and w.shape is not None and len(w.shape) == 2:
            return ["FULLY_CONNECTED"]
    elif node.op_type == "Resize" and a.get("mode", "nearest") == "nearest":
        return ["RESIZE_NEAREST_NEIGHBOR"]
    elif node.op_type == "Pad" and a.get("mode", "constant") in ("reflect", "edge"):
        return ["MIRROR_PAD"]
    elif node.op_type == "Clip":
        lo, hi = (node.inputs[i] if len(node.inputs) > i else None for i in (1, 2))
        bounds = (lo.value[0] if lo is not None and lo.value else None, hi.value[0] if hi is not None and hi.value else None)
        if bounds != (0.0, 6.0):
            return ["MINIMUM", "MAXIMUM"]
    elif node.op_type == "LSTM" and a.get("direction", "forward") == "bidirectional":
        return ["BIDIRECTIONAL_SEQUENCE_LSTM"]
    return ops


def check_node(node: NodeInfo) -> tuple[str, str]:
    if node.domain:
        return UNSUPPORTED, f"domain '{node.domain}' has no onnx2tf converter"
    row = onnx2tf_rows().get(node.op_type)
    if row is None:
        return UNSUPPORTED, f"onnx2tf has no converter for {node.op_type}"
    for t in [*node.inputs, *node.outputs]:
        if t is not None and t.dtype in NO_TFLITE_TYPE:
            return RESTRICTION, f"tensor '{t.name}' is {t.dtype}: TFLite has no such tensor type"
    for slot in (int(i) for i in row["const_inputs"].split(",") if i):
        t = node.inputs[slot] if slot < len(node.inputs) else None
        if t is not None and not t.constant:
            return RESTRICTION, f"input {slot} ('{t.name}') must be a constant for a static TFLite graph"
    return SUPPORTED, row["note"]


def check(graph: WalkedGraph, settings: dict) -> RouteResult:
    table = load_table(TABLE)
    result = RouteResult(table=f"{TABLE}: {table.source[0]}", predicted=True)
    for t in graph.dynamic_inputs:
        result.issues.append(Issue("warning", f"input '{t.name}' has dynamic shape {list(t.shape or [])}: "
                                              "int8 calibration and most delegates need input_shapes"))
    result.verdicts = [(n, *check_node(n)) for n in graph.nodes]
    return result
