"""Optimization profiles for dynamic inputs, as a target writes them in targets.toml:

    profiles = [{ input = { min = [1, 3, 224, 224], opt = [4, 3, 224, 224], max = [8, 3, 224, 224] } }]

one table per optimization profile (a single table without the list is accepted too). TensorRT
needs one min/opt/max triple per dynamic input in every profile; static inputs may be left out.
"""

from __future__ import annotations

from typing import Any

KINDS = ("min", "opt", "max")


def normalize(value: Any) -> list[dict[str, dict[str, list[int]]]]:
    """`profiles` as a list of {input name: {min, opt, max}}; empty when the target gives none.
    Shape problems are left to `problems()` so they are reported together."""
    if value in (None, "", [], {}):
        return []
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list):
        return list(value)
    return [value]


def problems(value: Any, model_inputs: list[dict[str, Any]]) -> list[str]:
    """Everything wrong with a `profiles` value for a model with these inputs."""
    found: list[str] = []
    by_name = {spec["name"]: spec for spec in model_inputs}
    for index, profile in enumerate(normalize(value)):
        where = "profiles" if not isinstance(value, list) else f"profiles[{index}]"
        if not isinstance(profile, dict):
            found.append(f"{where}: must be a table of input name -> {{min, opt, max}}")
            continue
        for name, triple in profile.items():
            if name not in by_name:
                found.append(
                    f"{where}.{name}: the model has no input '{name}' "
                    f"(inputs: {', '.join(sorted(by_name)) or 'none'})"
                )
                continue
            found.extend(_triple_problems(f"{where}.{name}", triple, by_name[name]["shape"]))
    return found


def _triple_problems(where: str, triple: Any, model_shape: list) -> list[str]:
    if not isinstance(triple, dict) or set(triple) != set(KINDS):
        return [f"{where}: needs exactly min, opt and max shapes"]
    shapes = {}
    for kind in KINDS:
        shape = triple[kind]
        if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape
        ):
            return [f"{where}.{kind}: must be a list of positive integers, got {shape!r}"]
        if len(shape) != len(model_shape):
            return [f"{where}.{kind}: has {len(shape)} dimensions, the model input has {len(model_shape)}"]
        shapes[kind] = shape
    found = []
    for axis, dim in enumerate(model_shape):
        if isinstance(dim, int) and dim > 0 and any(shapes[k][axis] != dim for k in KINDS):
            found.append(f"{where}: dimension {axis} is fixed to {dim} by the model")
    if any(not (lo <= mid <= hi) for lo, mid, hi in zip(shapes["min"], shapes["opt"], shapes["max"])):
        found.append(f"{where}: needs min <= opt <= max in every dimension")
    return found


def covered_inputs(value: Any) -> set[str]:
    """Inputs that every profile gives shapes for."""
    profiles = normalize(value)
    if not profiles:
        return set()
    names = set(profiles[0]) if isinstance(profiles[0], dict) else set()
    for profile in profiles[1:]:
        names &= set(profile) if isinstance(profile, dict) else set()
    return names
