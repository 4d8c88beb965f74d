"""Why int8 misses the accuracy gates: its 8-bit activations, or its weights.

When an int8 file agrees too little with its float source, each route quantizes it once more with
the same options but 16-bit activations (a probe, never shipped: onnxruntime's contrib QDQ ops,
ai-edge-quantizer's static_wi8_ai16) and measures that on the same data. If the probe agrees, the
loss is in the 8-bit per-tensor activations, which no post-training option here recovers once the
accuracy fallback has tried (PaddleOCR's detectors and recognizers:
benchmarks/int8_error_sources.py); if it does not, the int8 weights lose it as well."""

from __future__ import annotations

# how a user turns each route's accuracy fallback on
FALLBACK_SWITCH = {
    "onnxruntime": "int8_search and int8_accuracy_fallback on",
    "tflite": "int8_min_cosine set",
}


def record(int8_cosine, a16_cosine: float, a16_passes: bool, fallback: str, data: str) -> dict:
    """The diagnosis as metadata. fallback: "tried" (the accuracy fallback ran), "available" (it is
    off) or "impossible" (an integer-only target keeps no op float); data: what it was measured on."""
    return {
        "int8_worst_cosine": None if int8_cosine is None else round(float(int8_cosine), 6),
        "a16_worst_cosine": round(float(a16_cosine), 6),
        "a16_passes": bool(a16_passes),
        "cause": "8-bit activations" if a16_passes else "int8 weights (and activations)",
        "fallback": fallback,
        "data": data,
    }


def explain(diagnosis: dict, route: str) -> str:
    """One sentence for a failure message."""
    if "error" in diagnosis:
        return f"int8 diagnosis: the 16-bit activation probe failed ({diagnosis['error']})"
    figures = f"with 16-bit activations the worst output agrees at cosine {diagnosis['a16_worst_cosine']:.4f}"
    if diagnosis.get("int8_worst_cosine") is not None:
        figures += f" (int8: {diagnosis['int8_worst_cosine']:.4f}"
        figures += f", on the {diagnosis['data']})" if diagnosis.get("data") else ")"
    if not diagnosis["a16_passes"]:
        return (
            f"int8 diagnosis: {figures}, still outside the gates: the int8 weights lose it too; keep "
            f"the layers that lose most in float, or ship fp16/fp32"
        )
    fallback = diagnosis.get("fallback")
    if fallback == "available":
        return (
            f"int8 diagnosis: {figures}, within the gates: the 8-bit activations lose it; the accuracy "
            f"fallback ({FALLBACK_SWITCH.get(route, 'on')}) keeps the worst of them float and may "
            f"recover it, else ship fp16/fp32"
        )
    why = (
        "an integer-only target can keep no op float"
        if fallback == "impossible"
        else "spread wider than the accuracy fallback can keep float"
    )
    return (
        f"int8 diagnosis: {figures}, within the gates: the 8-bit activations lose it, {why}; "
        f"post-training int8 will not hold this model: ship fp16/fp32, or quantize it with "
        f"quantization-aware training"
    )
