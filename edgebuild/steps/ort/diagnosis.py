"""Why int8 misses the accuracy gates: its 8-bit activations, or its weights.

When the int8 that goes to verification misses the agreement gates, it is quantized once more with
the same options but 16-bit activations (onnxruntime's contrib QDQ ops: a probe, never shipped) and
checked on the same data. If the probe passes, the loss is in the 8-bit per-tensor activations,
which no post-training option here recovers (PaddleOCR's detectors and recognizers:
benchmarks/int8_error_sources.py); if it misses too, the int8 weights lose it as well."""

from __future__ import annotations

from pathlib import Path

from edgebuild.steps.base import StepFailed


def activation_probe(best, prepared: Path, bench, reader_factory, work: Path, fallback_tried: bool) -> dict:
    """Figures for `best` (a search Candidate that misses the gates) requantized with 16-bit
    activations: {"int8_worst_cosine", "a16_worst_cosine", "a16_passes", "cause", "fallback_tried"}
    or {"error"}. fallback_tried: whether the accuracy fallback already kept layers float."""
    from edgebuild.steps.ort.quantize import quantize
    from edgebuild.steps.ort.runtime import session

    options = best.options.but(activation_type="uint16")
    path = work / "probe-a16.onnx"
    try:
        quantize(prepared, path, options, reader_factory, work)
        figures, misses = bench.agreement(session(path, bench.threads, what="the 16-bit activation probe"))
    except StepFailed as exc:
        return {"error": str(exc)[:300]}
    worst = min(o["cosine_mean"] for o in figures["outputs"].values())
    return {
        "int8_worst_cosine": best.figures.get("worst_output_cosine"),
        "a16_worst_cosine": round(worst, 6),
        "a16_passes": not misses,
        "cause": "8-bit activations" if not misses else "int8 weights (and activations)",
        "fallback_tried": fallback_tried,
    }


def explain(diagnosis: dict) -> str:
    """One sentence for a failure message."""
    if "error" in diagnosis:
        return f"int8 diagnosis: the 16-bit activation probe failed ({diagnosis['error']})"
    figures = (
        f"with 16-bit activations the worst output agrees at cosine {diagnosis['a16_worst_cosine']:.4f}"
        + (
            f" (int8: {diagnosis['int8_worst_cosine']:.4f})"
            if diagnosis.get("int8_worst_cosine") is not None
            else ""
        )
    )
    if diagnosis["a16_passes"] and diagnosis.get("fallback_tried"):
        return (
            f"int8 diagnosis: {figures}, within the gates: the 8-bit activations lose it, spread wider "
            f"than the accuracy fallback can keep float; post-training int8 will not hold this model: "
            f"ship fp16/fp32, or quantize it with quantization-aware training"
        )
    if diagnosis["a16_passes"]:
        return (
            f"int8 diagnosis: {figures}, within the gates: the 8-bit activations lose it; the accuracy "
            f"fallback (int8_search and int8_accuracy_fallback on) keeps the worst of them float and "
            f"may recover it, else ship fp16/fp32"
        )
    return (
        f"int8 diagnosis: {figures}, still outside the gates: the int8 weights lose it too; keep the "
        f"layers that lose most in float (exclude_nodes), or ship fp16/fp32"
    )
