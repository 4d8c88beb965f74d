"""Whether a float32 network survives FP16: weights and constants outside FP16's range, and (given
calibration data) activations that overflow it. Reported, not fatal: the user decides."""

from __future__ import annotations

from typing import Any, Iterator

FP16_MAX = 65504.0
FP16_SMALLEST_SUBNORMAL = 2.0**-24  # non-zero magnitudes below this become 0 in FP16
REPORT_AT_MOST = 10


def _float_tensors(model) -> Iterator:
    from onnx import numpy_helper

    for init in model.graph.initializer:
        if init.data_type in (1, 11):  # FLOAT, DOUBLE
            yield init.name, numpy_helper.to_array(init)
    for node in model.graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value" and attr.t.data_type in (1, 11):
                    yield node.output[0], numpy_helper.to_array(attr.t)


def weights_report(model) -> dict[str, Any]:
    import numpy as np

    overflow, underflow = [], []
    for name, array in _float_tensors(model):
        magnitude = np.abs(array.astype(np.float64, copy=False))
        too_big = int(np.count_nonzero(magnitude > FP16_MAX))
        too_small = int(np.count_nonzero((magnitude > 0) & (magnitude < FP16_SMALLEST_SUBNORMAL)))
        if too_big:
            overflow.append({"name": name, "count": too_big, "max_abs": float(magnitude.max())})
        if too_small:
            underflow.append({"name": name, "count": too_small})
    overflow.sort(key=lambda item: -item["max_abs"])
    underflow.sort(key=lambda item: -item["count"])
    return {
        "weights_overflow": overflow[:REPORT_AT_MOST],
        "weights_overflow_tensors": len(overflow),
        "weights_underflow": underflow[:REPORT_AT_MOST],
        "weights_underflow_tensors": len(underflow),
    }


def activations_report(model_path, feeds: list[dict]) -> dict[str, Any]:
    """Largest magnitude of every float intermediate tensor over the given feeds (run by
    onnxruntime with all of them exposed as outputs)."""
    import numpy as np
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(model_path))
    inferred = onnx.shape_inference.infer_shapes(model)
    produced = {name for node in model.graph.node for name in node.output}
    # value_info may describe tensors no node makes any more (stale after optimization)
    float_values = [
        vi for vi in inferred.graph.value_info if vi.type.tensor_type.elem_type == 1 and vi.name in produced
    ]
    existing = {out.name for out in model.graph.output}
    model.graph.output.extend(vi for vi in float_values if vi.name not in existing)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [out.name for out in session.get_outputs()]
    peak = dict.fromkeys(names, 0.0)
    for feed in feeds:
        for name, value in zip(names, session.run(names, feed)):
            if value.dtype.kind == "f" and value.size:
                peak[name] = max(peak[name], float(np.nanmax(np.abs(value))))
    overflow = sorted(
        ({"name": n, "max_abs": v} for n, v in peak.items() if v > FP16_MAX),
        key=lambda item: -item["max_abs"],
    )
    return {
        "activations_checked_samples": len(feeds),
        "activation_max_abs": max(peak.values(), default=0.0),
        "activations_overflow": overflow[:REPORT_AT_MOST],
        "activations_overflow_tensors": len(overflow),
    }


def report(model, model_path, feeds: list[dict] | None) -> dict[str, Any]:
    result = weights_report(model)
    if feeds:
        result.update(activations_report(model_path, feeds))
    result["ready"] = not result["weights_overflow"] and not result.get("activations_overflow")
    return result
