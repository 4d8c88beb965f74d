"""The onnxruntime route's 16-bit activation probe (edgebuild/int8_diagnosis.py says why)."""

from __future__ import annotations

from pathlib import Path

from edgebuild.int8_diagnosis import record
from edgebuild.steps.base import StepFailed


def activation_probe(best, prepared: Path, bench, reader_factory, work: Path, fallback_tried: bool) -> dict:
    """`best` (a search Candidate that misses the gates) requantized with 16-bit activations and
    checked against the same gates on the same data."""
    from edgebuild.steps.ort.quantize import quantize
    from edgebuild.steps.ort.runtime import session

    path = work / "probe-a16.onnx"
    try:
        quantize(prepared, path, best.options.but(activation_type="uint16"), reader_factory, work)
        figures, misses = bench.agreement(session(path, bench.threads, what="the 16-bit activation probe"))
    except StepFailed as exc:
        return {"error": str(exc)[:300]}
    return record(
        best.figures.get("worst_output_cosine"),
        min(o["cosine_mean"] for o in figures["outputs"].values()),
        not misses,
        "tried" if fallback_tried else "available",
        "",
    )
