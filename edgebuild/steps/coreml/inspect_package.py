"""coreml.inspect: what Linux can check about a produced `.mlpackage`.

The package must load as a spec and be an ML Program; its inputs and outputs must match the
source ONNX model's (names, static shapes, dtypes as Core ML represents them); the MIL operations
it contains become the target's coverage record (`mil_ops.json`). Also writes `LoadModel.swift`.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

from edgebuild.steps.base import Step, StepContext, StepFailed

from . import options as option_parsing
from .swift_snippet import swift_snippet

# How each source dtype is allowed to appear in the package (Core ML has no int64/bool arrays).
ACCEPTED_DTYPES = {
    "float32": {"float32", "float16", "uint8"},  # uint8: an image input with preprocessing
    "float16": {"float16", "float32"},
    "int64": {"int32"},
    "int32": {"int32"},
    "bool": {"int32"},
}


def _same_name(onnx_name: str, coreml_name: str) -> bool:
    # coremltools turns characters that are not valid identifiers into "_"
    return onnx_name == coreml_name or re.sub(r"\W", "_", onnx_name) == coreml_name


def io_mismatches(expected: list[dict], actual: list[dict], kind: str) -> list[str]:
    problems = []
    if len(expected) != len(actual):
        return [f"the source model has {len(expected)} {kind}s, the package {len(actual)}"]
    for want, got in zip(expected, actual):
        if not _same_name(want["name"], got["name"]):
            problems.append(f"{kind} '{want['name']}' is named '{got['name']}' in the package")
        if got["shape"] and list(want["shape"]) != list(got["shape"]):
            problems.append(
                f"{kind} '{want['name']}' has shape {got['shape']} in the package, {want['shape']} in the source"
            )
        if got["dtype"] not in ACCEPTED_DTYPES.get(want["dtype"], {want["dtype"]}):
            problems.append(
                f"{kind} '{want['name']}' is {got['dtype']} in the package, {want['dtype']} in the source"
            )
    return problems


def source_io(model_path, shapes: dict) -> tuple[list[dict], list[dict], Counter]:
    """Inputs (with fixed shapes), outputs (shapes from an onnxruntime run) and op counts of the source."""
    from . import numerics, onnx_route

    prepared = onnx_route.prepare(model_path, shapes)
    outputs = numerics.onnxruntime_outputs(model_path, onnx_route.example_inputs(prepared))
    inputs = [{"name": i.name, "shape": i.shape, "dtype": i.dtype} for i in prepared.inputs]
    outs = [
        {"name": n, "shape": list(v.shape), "dtype": v.dtype.name}
        for n, v in zip(prepared.output_names, outputs)
    ]
    return inputs, outs, Counter(prepared.node_ops)


class CoremlInspectStep(Step):
    name = "coreml.inspect"
    version = "1"
    uses = ("coremltools", "onnx", "onnxruntime", "numpy")
    inputs = ("package", "model")
    outputs = ("mil_ops.json", "LoadModel.swift")

    def run(self, ctx: StepContext) -> dict[str, Any]:
        shapes = option_parsing.input_shapes(ctx.params)
        package = ctx.input("package")

        from . import spec_reader

        spec = spec_reader.load_spec(package)
        ops = spec_reader.mil_operations(spec)
        actual = spec_reader.package_io(spec)
        want_inputs, want_outputs, source_ops = source_io(ctx.input("model"), shapes)
        problems = io_mismatches(want_inputs, actual["inputs"], "input") + io_mismatches(
            want_outputs, actual["outputs"], "output"
        )
        if problems:
            raise StepFailed(
                f"{package.name} does not match {ctx.input('model').name}: {'; '.join(problems)}"
            )

        io = ctx.upstream.get("package", {}).get("io") or actual
        package_name = str(ctx.params.get("package_name") or package.stem)
        compute_units = option_parsing.compute_units(ctx.params)
        ctx.output("LoadModel.swift").write_text(swift_snippet(io, package_name, compute_units=compute_units))

        coverage = {
            "route": "coreml",
            "ok": True,
            "summary": f"{sum(source_ops.values())} ONNX nodes -> {ops['total']} MIL ops "
            f"({len(ops['ops'])} kinds), spec version {ops['spec_version']}, opset {ops['opset']}",
            "total_nodes": sum(source_ops.values()),
            "source_ops": dict(sorted(source_ops.items())),
            "mil_ops": ops["ops"],
            "mil_ops_total": ops["total"],
            "spec_version": ops["spec_version"],
            "opset": ops["opset"],
            "notes": [
                "every ONNX node converted: the package exists; MIL op counts are taken from the package itself"
            ],
        }
        ctx.output("mil_ops.json").write_text(json.dumps(coverage, indent=2, sort_keys=True) + "\n")
        return {
            "io": io,
            "coverage": coverage,
            "metadata": spec_reader.user_metadata(spec),
            "checks": {"spec_loads": True, "io_matches_source": True, "ml_program": True},
        }
