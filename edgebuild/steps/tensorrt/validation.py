"""Check-time validation of a TensorRT target: device and precision mistakes, and dynamic inputs
without shapes, found before anything is converted (`edgebuild check` and the start of a build)."""

from __future__ import annotations

from edgebuild.steps.tensorrt import profiles as profile_rules
from edgebuild.steps.tensorrt import versions

PRECISIONS = ("fp32", "fp16", "int8")
HARDWARE_COMPATIBILITY = {"none": None, "ampere_plus": (8, 0), "same_compute_capability": (7, 5)}


def validate_target(params: dict, device: dict, model_inputs: list[dict]) -> list[str]:
    """Problems with one target, each a line naming the parameter or device field at fault.

    params:       the target's resolved recipe parameters (precision, workspace_mb, profiles, ...),
                  optionally with "input_shapes" from the model
    device:       the device profile table from the recipe, plus "name" when known
    model_inputs: the model's inputs, [{"name", "shape", "dtype"}]; a dimension that is not a
                  positive int is dynamic
    """
    name = device.get("name", "this device")
    found: list[str] = []
    found += _device_problems(name, device)
    cc = versions.parse(device.get("compute_capability", ""))

    precision = params.get("precision", "fp32")
    if precision not in PRECISIONS:
        found.append(f"precision: '{precision}' is not one of {', '.join(PRECISIONS)}")
    elif precision != "fp32" and not device.get(precision, True):
        other = [p for p in PRECISIONS if device.get(p, True)]
        found.append(
            f"precision: device '{name}' has no {precision.upper()} support "
            f"(compute capability {device.get('compute_capability')}); use {' or '.join(other)}"
        )

    workspace = params.get("workspace_mb", 0)
    if not isinstance(workspace, int) or isinstance(workspace, bool) or workspace < 0:
        found.append(f"workspace_mb: must be a non-negative integer (MiB), got {workspace!r}")
    elif device.get("memory_mb") and workspace > device["memory_mb"]:
        found.append(
            f"workspace_mb: {workspace} MiB exceeds device '{name}' memory of {device['memory_mb']} MiB"
        )

    level = params.get("optimization_level", 3)
    if not isinstance(level, int) or isinstance(level, bool) or not 0 <= level <= 5:
        found.append(f"optimization_level: must be an integer 0-5, got {level!r}")

    hardware = params.get("hardware_compatibility", "none")
    if hardware not in HARDWARE_COMPATIBILITY:
        found.append(
            f"hardware_compatibility: '{hardware}' is not one of {', '.join(HARDWARE_COMPATIBILITY)}"
        )
    elif hardware != "none":
        if device.get("platform") == "jetson":
            found.append(
                f"hardware_compatibility: TensorRT does not support hardware-compatible engines on Jetson ('{name}')"
            )
        elif cc and cc < HARDWARE_COMPATIBILITY[hardware]:
            need = ".".join(map(str, HARDWARE_COMPATIBILITY[hardware]))
            found.append(
                f"hardware_compatibility: '{hardware}' needs compute capability {need}+, "
                f"device '{name}' has {device.get('compute_capability')}"
            )

    found += _feature_problems(name, device, level, hardware, params.get("version_compatible", False))
    found += profile_rules.problems(params.get("profiles"), model_inputs)
    found += _dynamic_input_problems(params, model_inputs)
    return found


def _device_problems(name: str, device: dict) -> list[str]:
    found = []
    if not versions.parse(device.get("compute_capability", "")):
        found.append(f'devices.{name}.compute_capability: missing or not a version like "8.7"')
    entries = device.get("tensorrt_versions") or []
    if not entries:
        found.append(f"devices.{name}.tensorrt_versions: missing; list the TensorRT versions the device runs")
    elif all(versions.parse(e)[:2] < versions.OLDEST_SUPPORTED for e in entries):
        oldest = ".".join(map(str, versions.OLDEST_SUPPORTED))
        found.append(
            f"device '{name}' runs TensorRT {', '.join(entries)} only; this recipe needs {oldest} or newer"
        )
    return found


def _feature_problems(name: str, device: dict, level, hardware, version_compatible) -> list[str]:
    """Builder options that the oldest TensorRT the device runs does not have."""
    entries = [
        e for e in device.get("tensorrt_versions") or [] if versions.parse(e)[:2] >= versions.OLDEST_SUPPORTED
    ]
    if not entries:
        return []
    oldest = versions.lowest(entries)
    asked = {
        "optimization_level": level not in (3, None),
        "hardware_compatibility": hardware not in ("none", None),
        "version_compatible": bool(version_compatible),
    }
    found = []
    for feature, used in asked.items():
        since = versions.FEATURES_SINCE[feature]
        if used and oldest[:2] < since:
            found.append(
                f"{feature}: needs TensorRT {'.'.join(map(str, since))}+, device '{name}' "
                f"runs {'.'.join(map(str, oldest))}"
            )
    return found


def _dynamic_input_problems(params: dict, model_inputs: list[dict]) -> list[str]:
    covered = profile_rules.covered_inputs(params.get("profiles"))
    fixed = set((params.get("input_shapes") or {}).keys())
    found = []
    for spec in model_inputs:
        shape = spec.get("shape") or []
        dynamic = [axis for axis, d in enumerate(shape) if not (isinstance(d, int) and d > 0)]
        if dynamic and spec["name"] not in covered and spec["name"] not in fixed:
            found.append(
                f"profiles: input '{spec['name']}' has dynamic dimensions {dynamic} "
                f"(shape {shape}); add a min/opt/max profile for it or fix it in models.<model>.input_shapes"
            )
    return found
