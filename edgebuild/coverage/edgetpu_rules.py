"""Edge TPU mapping rules over TFLite op records, and the partition they imply.

Used twice: on a real full-int8 .tflite file (the TFLite/Edge TPU steps read its ops), and on the
TFLite ops predicted from an ONNX graph (edgebuild.coverage.edgetpu). The rules come from
`recipes/coverage/edgetpu-ops.tsv`; the constraint keys named there are implemented below.
"""

from __future__ import annotations

from typing import Any, Callable

from .partition import RESTRICTION, UNSUPPORTED, OpVerdict, Partition, cut_at_first_failure
from .tables import load_table

TABLE = "edgetpu-ops.tsv"
INT8_TYPES = {"int8", "uint8"}
PARAM_TYPES = INT8_TYPES | {"int32", "int64", "int16"}  # bias, axes, shapes, paddings
MAX_SOFTMAX_ELEMENTS = 16000


def _dtype(t: dict) -> str:
    return str(t.get("dtype", "")).lower().strip()


def _shape(t: dict) -> list | None:
    s = t.get("shape")
    return list(s) if s is not None else None


def _is_dynamic(shape: list | None) -> bool:
    return shape is None or any(d is None or not isinstance(d, int) or d < 0 for d in shape)


def _rank_ok(shape: list) -> bool:
    """Tensors may have any rank as long as only the innermost 3 dimensions exceed 1."""
    return all(d == 1 for d in shape[:-3])


def _param_slots(spec: str) -> set[int]:
    slots: set[int] = set()
    for part in filter(None, (p.strip() for p in spec.split(","))):
        if "-" in part:
            lo, hi = part.split("-")
            slots.update(range(int(lo), int(hi) + 1))
        else:
            slots.add(int(part))
    return slots


def _axes(op: dict) -> list[int] | None:
    opts = op.get("options") or {}
    for key in ("axes", "axis"):
        if key in opts and opts[key] is not None:
            v = opts[key]
            return list(v) if isinstance(v, (list, tuple)) else [int(v)]
    inputs = op.get("inputs") or []
    if len(inputs) > 1 and inputs[1].get("value") is not None:
        v = inputs[1]["value"]
        return list(v) if isinstance(v, (list, tuple)) else [int(v)]
    return None


def _normalise_axes(axes: list[int], rank: int) -> list[int]:
    return [a + rank if a < 0 else a for a in axes]


# Each rule returns None when satisfied, else the reason (worded like the compiler's docs).
def _no_fused_activation(op: dict) -> str | None:
    act = (op.get("options") or {}).get("fused_activation_function", "NONE")
    return None if act in (None, "NONE", 0) else f"fused activation {act} is not supported"


def _concat_constant_input(op: dict) -> str | None:
    inputs = op.get("inputs") or []
    consts = [t for t in inputs if t.get("constant")]
    if not consts:
        return None
    if len(inputs) != 2:
        return "a constant input is allowed only with exactly 2 inputs"
    value = consts[0].get("value")
    if value is not None and any(_flatten_nonzero(value)):
        return "a constant input must be all zeros"
    return None


def _flatten_nonzero(value: Any):
    if isinstance(value, (list, tuple)):
        for v in value:
            yield from _flatten_nonzero(v)
    else:
        yield value != 0


def _same_dilation(op: dict) -> str | None:
    opts = op.get("options") or {}
    w, h = opts.get("dilation_w_factor", 1), opts.get("dilation_h_factor", 1)
    return None if w == h else f"dilation differs in x ({w}) and y ({h})"


def _default_weights_format(op: dict) -> str | None:
    fmt = (op.get("options") or {}).get("weights_format", "DEFAULT")
    return None if fmt in ("DEFAULT", 0, None) else f"weights format {fmt} is not supported"


def _fc_1d_output(op: dict) -> str | None:
    outs = op.get("outputs") or []
    shape = _shape(outs[0]) if outs else None
    if shape is None or _is_dynamic(shape):
        return None
    inner = [d for d in shape[1:]] if len(shape) > 1 else shape
    return None if sum(d > 1 for d in inner) <= 1 else f"output {shape} is not 1-D"


def _not_batch_axis(op: dict) -> str | None:
    axes = _axes(op)
    inputs = op.get("inputs") or []
    shape = _shape(inputs[0]) if inputs else None
    if axes is None or shape is None:
        return None
    rank = len(shape) + (1 if op.get("op") == "PACK" else 0)
    return "works on the batch dimension" if 0 in _normalise_axes(axes, rank) else None


def _pad_not_batch(op: dict) -> str | None:
    inputs = op.get("inputs") or []
    value = inputs[1].get("value") if len(inputs) > 1 else None
    if value is None:
        return None
    first = value[0] if isinstance(value[0], (list, tuple)) else value[:2]
    return "pads the batch dimension" if any(int(x) != 0 for x in first) else None


def _mean_z_multiple_of_4(op: dict) -> str | None:
    axes = _axes(op)
    inputs = op.get("inputs") or []
    shape = _shape(inputs[0]) if inputs else None
    if axes is None or shape is None or _is_dynamic(shape):
        return None
    if len(shape) - 1 in _normalise_axes(axes, len(shape)) and shape[-1] % 4:
        return f"reduces over z of size {shape[-1]}, not a multiple of 4"
    return None


def _prelu_alpha_1d(op: dict) -> str | None:
    inputs = op.get("inputs") or []
    shape = _shape(inputs[1]) if len(inputs) > 1 else None
    if shape is None:
        return None
    return None if all(d == 1 for d in shape[:-1]) else f"alpha of shape {shape} is not 1-D"


def _resize_3d(op: dict) -> str | None:
    shape = _shape((op.get("inputs") or [{}])[0])
    if shape is None:
        return None
    return None if len(shape) <= 3 or all(d == 1 for d in shape[:-3]) else f"input {shape} is not 3-D"


def _softmax_1d(op: dict) -> str | None:
    shape = _shape((op.get("inputs") or [{}])[0])
    if shape is None or _is_dynamic(shape):
        return None
    if any(d > 1 for d in shape[:-1]):
        return f"input {shape} is not 1-D"
    if shape and shape[-1] > MAX_SOFTMAX_ELEMENTS:
        return f"input has {shape[-1]} elements (at most {MAX_SOFTMAX_ELEMENTS})"
    return None


def _squeeze_leading_only(op: dict) -> str | None:
    shape = _shape((op.get("inputs") or [{}])[0])
    dims = (op.get("options") or {}).get("squeeze_dims")
    if shape is None:
        return None
    axes = _normalise_axes(list(dims), len(shape)) if dims else [i for i, d in enumerate(shape) if d == 1]
    ok = all(all(d == 1 for d in shape[: a + 1]) for a in axes)
    return None if ok else f"squeezes a non-leading dimension of {shape}"


def _strided_slice_plain(op: dict) -> str | None:
    opts = op.get("options") or {}
    if opts.get("ellipsis_mask", 0) or opts.get("new_axis_mask", 0):
        return "ellipsis and new-axis masks must be 0"
    inputs = op.get("inputs") or []
    strides = inputs[3].get("value") if len(inputs) > 3 else None
    if strides is not None and any(int(s) != 1 for s in strides):
        return f"strides {list(strides)} are not all 1"
    return None


RULES: dict[str, Callable[[dict], str | None]] = {
    "no_fused_activation": _no_fused_activation,
    "concat_constant_input": _concat_constant_input,
    "same_dilation": _same_dilation,
    "default_weights_format": _default_weights_format,
    "fc_1d_output": _fc_1d_output,
    "not_batch_axis": _not_batch_axis,
    "pad_not_batch": _pad_not_batch,
    "mean_z_multiple_of_4": _mean_z_multiple_of_4,
    "prelu_alpha_1d": _prelu_alpha_1d,
    "resize_3d": _resize_3d,
    "softmax_1d_16000": _softmax_1d,
    "squeeze_leading_only": _squeeze_leading_only,
    "strided_slice_plain": _strided_slice_plain,
}


def edgetpu_op_table() -> dict[str, dict[str, str]]:
    return {row["op"]: row for row in load_table(TABLE).rows}


def check_tflite_op(op: dict, graph_inputs_float: bool = False) -> OpVerdict:
    """The Edge TPU verdict for one TFLite op record, ignoring the position in the graph."""
    name = str(op.get("op", "")).upper()
    index = int(op.get("index", 0))
    macs = int(op.get("macs") or 0)
    verdict = OpVerdict(index=index, op=name, ok=True, macs=macs, name=str(op.get("name", "")))
    row = edgetpu_op_table().get(name)
    if op.get("subgraph", 0):
        return _fail(verdict, UNSUPPORTED, "more than one subgraph is not supported")
    if row is None:
        return _fail(verdict, UNSUPPORTED, f"{name} is not an Edge TPU operation")
    params = _param_slots(row["param_inputs"])
    tensors = [(i, t, i in params) for i, t in enumerate(op.get("inputs") or [])]
    tensors += [(-1, t, False) for t in (op.get("outputs") or [])]
    for slot, t, is_param in tensors:
        dtype = _dtype(t)
        if dtype and dtype not in (PARAM_TYPES if is_param else INT8_TYPES):
            return _fail(
                verdict, RESTRICTION, f"works on an unsupported data type ({dtype}); needs int8/uint8"
            )
        if is_param or t.get("constant"):
            continue
        shape = _shape(t)
        if _is_dynamic(shape):
            return _fail(verdict, RESTRICTION, f"tensor size {shape} is not constant at compile time")
        if not _rank_ok(shape):
            return _fail(
                verdict,
                RESTRICTION,
                f"tensor {shape} has unsupported rank (up to 3 innermost dimensions mapped)",
            )
    for key in filter(None, (k.strip() for k in row["constraints"].split(","))):
        problem = RULES[key](op)
        if problem:
            return _fail(verdict, RESTRICTION, problem)
    if row["status"] == "R":
        verdict.reason = "reported supported by Coral, not verified"
    return verdict


def _fail(verdict: OpVerdict, status: str, reason: str) -> OpVerdict:
    verdict.ok, verdict.status, verdict.reason = False, status, reason
    return verdict


def _is_float(t: dict) -> bool:
    return _dtype(t).startswith("float") or _dtype(t) in ("float32", "float16")


def partition_tflite_ops(ops: list[dict]) -> Partition:
    """Predict which TFLite ops the Edge TPU compiler maps, and where the CPU part starts.

    `ops` are the ops of a TFLite model in execution order, each a dict:
        {"index": int, "op": "CONV_2D" (TFLite builtin name), "name": str (optional),
         "inputs":  [{"dtype": "int8", "shape": [1, 224, 224, 3],
                      "constant": bool (optional), "value": list (optional: small constants such as
                      axes, paddings, strides)}, ...],
         "outputs": [same],
         "options": {builtin options, e.g. "fused_activation_function": "RELU",
                     "dilation_w_factor": 1, "dilation_h_factor": 1, "axis": 0,
                     "squeeze_dims": [0], "ellipsis_mask": 0, "new_axis_mask": 0,
                     "weights_format": "DEFAULT"},
         "macs": int (multiply-accumulates, for the share), "subgraph": int (optional, 0 = main)}

    Rules (recipes/coverage/edgetpu-ops.tsv): the op must be an Edge TPU op; activations int8/uint8;
    sizes constant; only the innermost 3 dimensions may exceed 1; per-op constraints. The compiler
    cuts once: the first op that fails and every op after it run on the CPU. A QUANTIZE that takes a
    float model input, and a DEQUANTIZE that produces a float output, run on the CPU at the edges
    without cutting the graph.
    """
    verdicts: list[OpVerdict] = []
    seen_mapped = False
    for position, op in enumerate(ops):
        name = str(op.get("op", "")).upper()
        ins, outs = op.get("inputs") or [], op.get("outputs") or []
        if name == "QUANTIZE" and not seen_mapped and ins and _is_float(ins[0]):
            verdicts.append(
                OpVerdict(
                    int(op.get("index", position)),
                    name,
                    False,
                    boundary=True,
                    reason="float input converted to int8 on the CPU",
                    name=str(op.get("name", "")),
                )
            )
            continue
        if name == "DEQUANTIZE" and outs and _is_float(outs[0]) and _only_dequantize_after(ops, position):
            verdicts.append(
                OpVerdict(
                    int(op.get("index", position)),
                    name,
                    False,
                    boundary=True,
                    reason="int8 output converted to float on the CPU",
                    name=str(op.get("name", "")),
                )
            )
            continue
        v = check_tflite_op(op)
        seen_mapped = seen_mapped or v.ok
        verdicts.append(v)
    return cut_at_first_failure(verdicts)


def _only_dequantize_after(ops: list[dict], position: int) -> bool:
    return all(str(o.get("op", "")).upper() == "DEQUANTIZE" for o in ops[position + 1 :])
