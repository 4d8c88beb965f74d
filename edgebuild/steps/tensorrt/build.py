"""tensorrt.build: the engine, built with the real TensorRT Python API where TensorRT and a GPU of
the device's class exist; everywhere else the target is deferred to the device's first run.

The action key covers the ONNX and builder_config.json contents, the device's compute capability
and TensorRT versions (step parameters) and the installed `tensorrt` version (`uses`); never the
engine bytes, which differ between otherwise identical builds (kernel timing)."""

from __future__ import annotations

import json
import time
from typing import Any

from edgebuild.steps.base import Deferred, Step, StepContext, StepFailed
from edgebuild.steps.tensorrt import engine_builder, gpu_probe, versions

AMPERE = (8, 0)


def _deferred_reason(params: dict) -> str:
    device = params.get("device", "the device")
    return (
        f"the bundle carries the prepared ONNX and builder_config.json; its loader builds the engine on "
        f"first run on the device ({device}: compute capability {params.get('compute_capability')}, "
        f"TensorRT {' or '.join(params.get('tensorrt_versions') or ['?'])})"
    )


def _usable_gpu(params: dict, settings: dict):
    """The first local GPU whose engines run on the target device, or None."""
    wanted = versions.parse(str(params.get("compute_capability", "")))
    for gpu in gpu_probe.gpus():
        cc = versions.parse(gpu.compute_capability)
        if cc == wanted:
            return gpu
        # an AMPERE_PLUS engine built on any Ampere-or-newer GPU runs on every other one
        if settings["hardware_compatibility"] == "ampere_plus" and cc >= AMPERE and wanted >= AMPERE:
            return gpu
    return None


class TensorrtBuildStep(Step):
    name = "tensorrt.build"
    version = "1"
    uses = ("tensorrt",)
    inputs = (
        "model",
        "config",
        "timing_cache?",
    )  # a previous timing cache for this (device class, TensorRT version)
    outputs = ("model.engine", "timing.cache")

    def resources(self, params: dict[str, Any]) -> dict[str, float]:
        return {f"gpu-sm{str(params.get('compute_capability', '')).replace('.', '')}": 1}

    def run(self, ctx: StepContext) -> dict[str, Any]:
        config = json.loads(ctx.input("config").read_text())
        try:
            import tensorrt as trt
        except ImportError:
            raise Deferred(
                f"TensorRT is not installed on this host: {_deferred_reason(ctx.params)}"
            ) from None
        installed = str(trt.__version__)
        allowed = ctx.params.get("tensorrt_versions") or config["tensorrt_versions"]
        if not any(versions.matches(installed, entry) for entry in allowed):
            raise Deferred(
                f"this host has TensorRT {installed}, device '{ctx.params.get('device')}' runs "
                f"{', '.join(allowed)}: {_deferred_reason(ctx.params)}"
            )
        gpu = _usable_gpu(ctx.params, config["builder"])
        if gpu is None:
            found = ", ".join(f"{g.name} ({g.compute_capability})" for g in gpu_probe.gpus()) or "none"
            raise Deferred(
                f"no GPU of compute capability {ctx.params.get('compute_capability')} here "
                f"(found: {found}): {_deferred_reason(ctx.params)}"
            )

        started = time.perf_counter()
        try:
            previous = ctx.input("timing_cache").read_bytes() if "timing_cache" in ctx.inputs else b""
            engine, timing_cache = engine_builder.build_engine(trt, ctx.input("model"), config, previous)
        except engine_builder.EngineBuildError as exc:
            raise StepFailed(str(exc)) from None
        seconds = time.perf_counter() - started
        ctx.output("model.engine").write_bytes(engine)
        ctx.output("timing.cache").write_bytes(timing_cache)
        return {
            "io": config["io"],
            "metrics": {"build_seconds": round(seconds, 3), "engine_bytes": len(engine)},
            "tensorrt_version": installed,
            "built_on": {"gpu": gpu.name, "compute_capability": gpu.compute_capability},
            "timing_cache_key": {"compute_capability": gpu.compute_capability, "tensorrt_version": installed},
        }
