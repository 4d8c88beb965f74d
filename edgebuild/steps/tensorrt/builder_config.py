"""tensorrt.config: the exact TensorRT builder configuration for one target, as JSON.

The same file drives the engine build on a build agent (tensorrt.build) and the first-run build
on the device when the target is deferred (the bundle's loader), so both build the same engine.
Device and precision mistakes are caught here, before any engine build is attempted."""

from __future__ import annotations

import json
from typing import Any

from edgebuild.hashing import sha256_file
from edgebuild.steps.base import Step, StepContext, StepFailed
from edgebuild.steps.tensorrt import model_io
from edgebuild.steps.tensorrt import profiles as profile_rules
from edgebuild.steps.tensorrt.validation import validate_target

SCHEMA = 1
MIB = 1 << 20


def device_from_params(params: dict) -> dict:
    """The device profile fields the recipe passes down as `device_*` step parameters."""
    device = {
        "name": params.get("device", "?"),
        "compute_capability": str(params.get("compute_capability", "")),
        "tensorrt_versions": list(params.get("tensorrt_versions") or []),
    }
    for field in ("platform", "memory_mb", "fp16", "int8"):
        if f"device_{field}" in params:
            device[field] = params[f"device_{field}"]
    return device


def make_config(params: dict, io: dict, onnx_sha256: str) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "device": params.get("device"),
        "compute_capability": str(params.get("compute_capability", "")),
        "tensorrt_versions": list(params.get("tensorrt_versions") or []),
        "precision": params.get("precision", "fp32"),
        "onnx_sha256": onnx_sha256,
        "io": io,
        "builder": {
            "workspace_bytes": int(params.get("workspace_mb", 1024)) * MIB,
            "optimization_level": int(params.get("optimization_level", 3)),
            "hardware_compatibility": params.get("hardware_compatibility", "none"),
            "version_compatible": bool(params.get("version_compatible", False)),
            "profiles": profile_rules.normalize(params.get("profiles")),
        },
    }


class TensorrtConfigStep(Step):
    name = "tensorrt.config"
    version = "1"
    uses = ("onnx",)
    inputs = ("model",)
    outputs = ("builder_config.json",)

    def check_config(self, params: dict[str, Any], model_io: dict) -> list[str]:
        return validate_target(params, device_from_params(params), model_io["inputs"])

    def run(self, ctx: StepContext) -> dict[str, Any]:
        import onnx

        model_path = ctx.input("model")
        io = model_io.describe_io(onnx.load(str(model_path), load_external_data=False))
        problems = validate_target(ctx.params, device_from_params(ctx.params), io["inputs"])
        if problems:
            raise StepFailed("; ".join(problems))
        config = make_config(ctx.params, io, sha256_file(model_path))
        ctx.output("builder_config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        return {"io": io, "builder_config": config}
