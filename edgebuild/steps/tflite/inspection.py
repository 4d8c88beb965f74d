"""tflite.inspect: checks of the produced .tflite file, without TensorFlow.

Reports the op list, float and dynamic tensors, ops the stock TFLite runtime cannot run (Flex and
custom ops), and with `rules = "edgetpu"` requires an integer-only, static-shape model and
predicts the Edge TPU / CPU split from Coral's published rules.
"""

from __future__ import annotations

import json
from typing import Any

from ..base import Step, StepContext, StepFailed
from .op_records import predict_edgetpu
from .schema import NotATfliteFile, read_model

RULES = ("none", "edgetpu")


class TfliteInspectStep(Step):
    name = "tflite.inspect"
    version = "1"
    inputs = ("model",)
    outputs = ("inspection.json",)

    def run(self, ctx: StepContext) -> dict[str, Any]:
        rules = ctx.params.get("rules", "none")
        if rules not in RULES:
            raise StepFailed(f"parameter 'rules': expected one of {', '.join(RULES)}, got {rules!r}")
        try:
            model = read_model(ctx.input("model"))
        except (NotATfliteFile, IndexError, ValueError) as exc:
            raise StepFailed(f"{ctx.input('model').name}: {exc}") from None
        report = inspect_model(model)
        meta: dict[str, Any] = {"inspection": report}
        if rules == "edgetpu":
            _require_edgetpu_ready(report)
            meta["coverage"] = predict_edgetpu(model)
        ctx.output("inspection.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
        return meta


def inspect_model(model) -> dict[str, Any]:
    sg = model.main
    float_tensors, dynamic = [], []
    for t in sg.tensors:
        if t.dtype not in ("int8", "uint8") and not (t.constant and t.dtype == "int32"):
            float_tensors.append({"tensor": t.name, "dtype": t.dtype, "constant": t.constant})
        if any(d < 0 for d in t.shape_signature):
            dynamic.append({"tensor": t.name, "shape": t.shape_signature})
    # An op is integer-only when every tensor it touches is int8/uint8 (int32 constants allowed).
    non_integer_ops = []
    for op in sg.operators:
        bad = [
            sg.tensors[i]
            for i in list(op.inputs) + list(op.outputs)
            if i >= 0
            and sg.tensors[i].dtype not in ("int8", "uint8")
            and not (sg.tensors[i].constant and sg.tensors[i].dtype == "int32")
        ]
        if bad:
            non_integer_ops.append(
                {"index": op.index, "op": op.op, "tensor": bad[0].name, "dtype": bad[0].dtype}
            )
    ops: dict[str, int] = {}
    for op in sg.operators:
        ops[op.op] = ops.get(op.op, 0) + 1
    unrunnable = sorted(name for name in ops if name.startswith("CUSTOM:"))
    return {
        "subgraphs": len(model.subgraphs),
        "operators": len(sg.operators),
        "op_counts": ops,
        "tensors": len(sg.tensors),
        "integer_only": not non_integer_ops,
        "static_shapes": not dynamic,
        "non_integer_ops": non_integer_ops[:20],
        "float_tensors": float_tensors[:20],
        "dynamic_tensors": dynamic[:20],
        "custom_ops": unrunnable,
    }


def _require_edgetpu_ready(report: dict[str, Any]) -> None:
    if report["custom_ops"]:
        raise StepFailed(
            f"the model contains {report['custom_ops'][0]}, which neither the Edge TPU nor the "
            f"stock TFLite runtime can run (the converter fell back to TensorFlow ops)"
        )
    if report["non_integer_ops"]:
        bad = report["non_integer_ops"][0]
        raise StepFailed(
            f"op #{bad['index']} {bad['op']} uses {bad['dtype']} tensor '{bad['tensor']}'; "
            f"the Edge TPU needs an integer-only model (an op the quantizer has no integer kernel for "
            f"stays float; the tflite recipe's int8 can ship such a model with float ops)"
        )
    if report["dynamic_tensors"]:
        bad = report["dynamic_tensors"][0]
        raise StepFailed(
            f"tensor '{bad['tensor']}' has dynamic shape {bad['shape']}; the Edge TPU needs "
            f"static shapes (set input_shapes on the model in targets.toml)"
        )
