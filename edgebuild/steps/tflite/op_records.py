"""The ops of a real .tflite file as the op records edgebuild's Edge TPU rules take.

The rules and the single-cut partition live in edgebuild.coverage (shared with `edgebuild check`,
which predicts TFLite ops from ONNX); this module only describes what the file actually contains:
each op's tensors (dtype, shape, constant, small constant values), builtin options and MACs.
"""

from __future__ import annotations

import struct
from math import prod
from typing import Any

from .schema import Subgraph, Tensor, TfliteModel

_VALUE_FORMATS = {"int8": "b", "uint8": "B", "int32": "i", "int64": "q", "float32": "f"}
_MAX_VALUES = 4096  # small constants (axes, paddings, strides, concat operands) only


def tensor_record(t: Tensor) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "name": t.name,
        "dtype": t.dtype,
        "shape": list(t.shape_signature),
        "constant": t.constant,
    }
    fmt = _VALUE_FORMATS.get(t.dtype)
    if t.constant and fmt:
        n = len(t.data) // struct.calcsize(fmt)
        if n <= _MAX_VALUES:
            rec["value"] = list(struct.unpack(f"<{n}{fmt}", t.data[: n * struct.calcsize(fmt)]))
    return rec


def _macs(sg: Subgraph, op) -> int:
    """Multiply-accumulates of the compute-heavy ops (for the share of work on the accelerator)."""
    try:
        out = sg.tensors[op.outputs[0]].shape
        if op.op == "CONV_2D":
            w = sg.tensors[op.inputs[1]].shape  # [out_c, kh, kw, in_c]
            return prod(out) * w[1] * w[2] * w[3]
        if op.op == "DEPTHWISE_CONV_2D":
            w = sg.tensors[op.inputs[1]].shape  # [1, kh, kw, out_c]
            return prod(out) * w[1] * w[2]
        if op.op == "FULLY_CONNECTED":
            w = sg.tensors[op.inputs[1]].shape  # [out, in]
            return prod(out) * w[-1]
    except (IndexError, TypeError):
        pass
    return 0


def op_records(model: TfliteModel) -> list[dict[str, Any]]:
    """Every op of every subgraph, main subgraph first, in execution order."""
    records = []
    for sg_index, sg in enumerate(model.subgraphs):
        for op in sg.operators:
            records.append(
                {
                    "index": op.index,
                    "op": op.op,
                    "name": sg.tensors[op.outputs[0]].name if op.outputs else "",
                    "inputs": [
                        tensor_record(sg.tensors[i])
                        if i >= 0
                        else {"dtype": "", "shape": [], "constant": True}
                        for i in op.inputs
                    ],
                    "outputs": [tensor_record(sg.tensors[i]) for i in op.outputs],
                    "options": dict(op.options),
                    "macs": _macs(sg, op),
                    "subgraph": sg_index,
                }
            )
    return records


def predict_edgetpu(model: TfliteModel) -> dict[str, Any]:
    """Predicted Edge TPU / CPU split of the file, in the coverage-report shape."""
    from edgebuild.coverage.edgetpu_rules import partition_tflite_ops

    partition = partition_tflite_ops(op_records(model))
    return {"device": "edgetpu", "source": "prediction", **partition.to_json()}
