"""How a model's inputs change between ONNX (channels first) and TFLite (channels last).

onnx2tf turns every input of rank 3 or more from N,C,... into N,...,C. The convert step records
the permutation in the artifact's I/O description, and the verify step and the bundle's loader use
it to feed data the way the artifact expects. Standard library only (numpy arrays are duck-typed).
"""

from __future__ import annotations

from typing import Any, Sequence


def channels_last_perm(rank: int) -> list[int]:
    """N,C,D1..Dk -> N,D1..Dk,C; identity for rank < 3."""
    if rank < 3:
        return list(range(rank))
    return [0] + list(range(2, rank)) + [1]


def infer_perm(source_shape: Sequence[int], artifact_shape: Sequence[int]) -> list[int] | None:
    """The permutation that maps a source-layout array onto the artifact's shape.

    Prefers onnx2tf's channels-last rule, then the identity; None when neither fits (the caller
    reports the mismatch). Dynamic source dims (<= 0 or None) match anything."""
    rank = len(source_shape)
    if rank != len(artifact_shape):
        return None
    for perm in (channels_last_perm(rank), list(range(rank))):
        if all(_dim_ok(source_shape[p], artifact_shape[i]) for i, p in enumerate(perm)):
            return perm
    return None


def fitting_perms(source_shape: Sequence[int], artifact_shape: Sequence[int]) -> list[list[int]]:
    """Every known layout that maps the source shape onto the artifact's (channels-last first);
    more than one when dims repeat ([1, 32, 32]): then only running the model can tell."""
    rank = len(source_shape)
    if rank != len(artifact_shape):
        return []
    found = []
    for perm in (channels_last_perm(rank), list(range(rank))):
        if perm not in found and all(_dim_ok(source_shape[p], artifact_shape[i]) for i, p in enumerate(perm)):
            found.append(perm)
    return found


def inverse(perm: Sequence[int]) -> list[int]:
    inv = [0] * len(perm)
    for i, p in enumerate(perm):
        inv[p] = i
    return inv


def layout_name(perm: Sequence[int]) -> str:
    if list(perm) == list(range(len(perm))):
        return {4: "NCHW", 3: "NCW"}.get(len(perm), "unchanged")
    return {4: "NHWC", 3: "NWC", 5: "NDHWC"}.get(len(perm), "channels-last")


def normalisation(mean: Any, std: Any) -> dict[str, Any]:
    """Validated normalisation applied as (x - mean) / std before the model (scalars or per channel)."""
    for name, value in (("mean", mean), ("std", std)):
        values = value if isinstance(value, list) else [value]
        if not values or not all(isinstance(v, (int, float)) for v in values):
            raise ValueError(f"parameter '{name}' must be a number or a list of numbers, got {value!r}")
    stds = std if isinstance(std, list) else [std]
    if any(s == 0 for s in stds):
        raise ValueError("parameter 'std' must not contain 0")
    return {"mean": mean, "std": std}


def _dim_ok(source: Any, artifact: int) -> bool:
    return source is None or not isinstance(source, int) or source <= 0 or source == artifact
