"""The Edge TPU route: predict, from the ONNX graph, which ops the Edge TPU compiler will map.

Certain: ops onnx2tf cannot convert at all (unsupported). Predicted (advice, never a stop on its
own): restrictions learned from node tests, the TFLite ops onnx2tf emits for each ONNX node
(tflite.tflite_ops_for), their int8 types after full-integer quantization, NHWC shapes, and from
those the compiler's single cut (edgetpu_rules), which a target's share policy may still gate. The real mapping is known
only once `edgetpu_compiler` has run on the int8 .tflite; check that file with
`partition_tflite_ops` too.
"""

from __future__ import annotations

from .edgetpu_rules import partition_tflite_ops  # noqa: F401  (re-exported: the .tflite-side API)
from .graph_walk import NodeInfo, TensorInfo, WalkedGraph
from .partition import FALLBACK, SUPPORTED, Partition
from .report import Issue, RouteResult
from .tflite import judge_node, tflite_ops_for

__all__ = ["partition_tflite_ops", "check", "predict_tflite_ops"]

QUANT_OPS = {"QuantizeLinear", "DequantizeLinear"}  # folded into int8 tensor parameters by the converter


def _nhwc(shape: tuple | None) -> list | None:
    """onnx2tf moves channels last for 3-D to 5-D tensors."""
    if shape is None:
        return None
    dims = [d if isinstance(d, int) and d >= 0 else -1 for d in shape]
    return [dims[0], *dims[2:], dims[1]] if 3 <= len(dims) <= 5 else dims


def _nhwc_axis(axis: int, rank: int) -> int:
    axis = axis + rank if axis < 0 else axis
    if not 3 <= rank <= 5 or axis == 0:
        return axis
    return rank - 1 if axis == 1 else axis - 1


def _tensor(t: TensorInfo) -> dict:
    dtype = t.dtype or ""
    if dtype.startswith("float") or dtype.startswith("bfloat"):
        dtype = "int8"  # full-integer quantization (predicted)
    elif dtype in ("int64", "int32", "uint32", "uint64"):
        dtype = "int32"
    record = {"dtype": dtype, "shape": _nhwc(t.shape)}
    if t.constant:
        record["constant"] = True
        if t.value is not None:
            record["value"] = t.value
    return record


def _options(node: NodeInfo, rank: int) -> dict:
    a = node.attrs
    opts: dict = {"fused_activation_function": "NONE"}
    if node.op_type in ("Conv", "ConvTranspose"):
        dil = a.get("dilations") or [1, 1]
        opts["dilation_h_factor"], opts["dilation_w_factor"] = dil[0], dil[-1]
    axes = a.get("axes")
    if (
        axes is None
        and node.op_type.startswith("Reduce")
        and len(node.inputs) > 1
        and node.inputs[1] is not None
    ):
        axes = node.inputs[1].value
    if node.op_type in ("GlobalAveragePool", "GlobalMaxPool"):
        axes = list(range(2, rank))
    if axes is not None and isinstance(axes, list):
        opts["axes"] = [_nhwc_axis(int(x), rank) for x in axes]
    if "axis" in a and isinstance(a["axis"], int):
        opts["axis"] = _nhwc_axis(a["axis"], rank)
    if node.op_type == "Squeeze":
        sq = (
            axes
            if axes is not None
            else (node.inputs[1].value if len(node.inputs) > 1 and node.inputs[1] else None)
        )
        if sq is not None:
            opts["squeeze_dims"] = [_nhwc_axis(int(x), rank) for x in sq]
            opts.pop("axes", None)
    return opts


def _pad_value(node: NodeInfo, rank: int) -> list | None:
    pads = node.attrs.get("pads")
    if pads is None and len(node.inputs) > 1 and node.inputs[1] is not None:
        pads = node.inputs[1].value
    if not pads or len(pads) != 2 * rank:
        return None
    pairs = [[pads[i], pads[i + rank]] for i in range(rank)]
    return [pairs[0], *pairs[2:], pairs[1]] if 3 <= rank <= 5 else pairs


def predict_tflite_ops(graph: WalkedGraph) -> tuple[list[dict], dict[int, int], set[int]]:
    """TFLite op records predicted for the graph, the ONNX node index of each, and folded nodes."""
    folded = graph.static_nodes()
    records: list[dict] = []
    owner: dict[int, int] = {}
    for node in graph.nodes:
        if node.index in folded or node.op_type in QUANT_OPS or graph.calls_local_function(node):
            continue
        ops = tflite_ops_for(node)
        if ops is not None and not ops:
            continue
        data = node.inputs[0] if node.inputs and node.inputs[0] is not None else None
        rank = len(data.shape) if data is not None and data.shape is not None else 0
        inputs = [
            _tensor(t) if t is not None else {"dtype": "int32", "shape": [0], "constant": True}
            for t in node.inputs
        ]
        if node.op_type == "Pad" and len(inputs) > 1:
            value = _pad_value(node, rank)
            if value is not None:
                inputs[1]["value"] = value
        if node.op_type == "Slice" and len(node.inputs) > 4 and node.inputs[4] is not None:
            inputs = inputs[:1] + inputs[1:3] + [inputs[4]]
        outputs = [_tensor(t) for t in node.outputs if t is not None]
        for j, op in enumerate(ops or [f"ONNX_{node.op_type.upper()}"]):
            owner[len(records)] = node.index
            records.append(
                {
                    "index": len(records),
                    "op": op,
                    "name": node.where,
                    "inputs": inputs,
                    "outputs": outputs,
                    "options": _options(node, rank),
                    "macs": node.macs if j == 0 else 0,
                    "subgraph": 1 if node.path and not node.function else 0,
                }
            )
    return records, owner, folded


def check(graph: WalkedGraph, settings: dict) -> RouteResult:
    result = RouteResult(table="edgetpu-ops.tsv + tflite-onnx2tf-ops.tsv (predicted mapping)", predicted=True)
    precision = settings.get("precision")
    if precision not in (None, "int8"):
        result.issues.append(
            Issue("error", f"the Edge TPU runs only full-int8 models; precision is {precision!r}")
        )
    for t in graph.dynamic_inputs:
        result.issues.append(
            Issue(
                "error",
                f"input '{t.name}' has dynamic shape {list(t.shape or [])}: the Edge "
                "TPU needs static shapes; set input_shapes",
            )
        )
    records, owner, folded = predict_tflite_ops(graph)
    partition: Partition = partition_tflite_ops(records)
    placement_by_node: dict[int, list] = {}
    for p in partition.placements:
        placement_by_node.setdefault(owner[p.index], []).append(p)
    advised: list[str] = []
    for node in graph.nodes:
        status, reason, certain = judge_node(node)
        if status != SUPPORTED and certain:  # no converter at all: the conversion will fail
            result.verdicts.append((node, status, reason))
            continue
        if status != SUPPORTED:  # predicted from node tests: advice, not a stop, and
            advised.append(f"{node.op_type} '{node.where}': {reason}")  # no cut in the share either
        places = placement_by_node.get(node.index, [])
        off = [p for p in places if not p.on_accelerator]
        if node.index in folded or not places:
            result.verdicts.append((node, SUPPORTED, "folded by the converter"))
            result.uncounted.add(node.index)
        elif not off:
            result.verdicts.append((node, SUPPORTED, ""))
        else:
            first = off[0]
            result.verdicts.append((node, FALLBACK, f"{first.op}: {first.reason}"))
    result.partition = partition
    if advised:
        result.notes.append(
            f"{len(advised)} node(s) with a predicted conversion problem (advice; the "
            f"converter decides), first {advised[0]}"
        )
    result.notes.append(
        "Edge TPU mapping is predicted from the ONNX graph (onnx2tf ops, full-int8 types); "
        "edgetpu_compiler's log on the built .tflite is authoritative"
    )
    return result
