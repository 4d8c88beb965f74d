"""Model inputs taken from a project's calibration file (.npz, one array per input name, batch
first), cut into feeds that onnxruntime can run, or made up when a model has no calibration data."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from edgebuild.evaldata import read_npz
from edgebuild.steps.base import StepFailed
from edgebuild.steps.tensorrt.model_io import concrete_shape


def load(path: Path) -> dict[str, Any]:
    """Every array of the calibration file, read by the shared npz reader (no unpickling)."""
    return read_npz(path, f"calibration data {Path(path).name}")


def feeds(
    inputs: list[dict], arrays: dict[str, Any], limit: int, source: str = "calibration data"
) -> Iterator[dict]:
    """Up to `limit` feeds. A static batch dimension takes that many rows per feed; a dynamic one
    takes one row, so every feed has the shape the model declares."""
    import numpy as np

    missing = [spec["name"] for spec in inputs if spec["name"] not in arrays]
    if missing:
        raise StepFailed(
            f"{source} has no array for model input(s) {', '.join(missing)} "
            f"(arrays: {', '.join(sorted(arrays)) or 'none'})"
        )
    rows_per_feed = {}
    for spec in inputs:
        array, shape = arrays[spec["name"]], spec["shape"]
        if array.ndim != len(shape):
            raise StepFailed(
                f"{source}: array '{spec['name']}' has {array.ndim} dimensions, "
                f"the model input has {len(shape)} ({shape})"
            )
        for axis, dim in enumerate(shape[1:], start=1):
            if isinstance(dim, int) and array.shape[axis] != dim:
                raise StepFailed(
                    f"{source}: array '{spec['name']}' has shape {list(array.shape)}, "
                    f"the model input needs {shape}"
                )
        rows_per_feed[spec["name"]] = shape[0] if shape and isinstance(shape[0], int) else 1
    available = min(arrays[name].shape[0] // rows for name, rows in rows_per_feed.items())
    if available == 0:
        raise StepFailed(f"{source}: too few rows for one batch of the model's inputs")
    for index in range(min(limit, available)):
        yield {
            spec["name"]: np.ascontiguousarray(
                arrays[spec["name"]][
                    index * rows_per_feed[spec["name"]] : (index + 1) * rows_per_feed[spec["name"]]
                ]
            ).astype(spec["dtype"], copy=False)
            for spec in inputs
        }


def synthetic_feed(
    inputs: list[dict], profiles: list[dict], input_shapes: dict | None = None, seed: int = 0
) -> dict:
    """A reproducible made-up input for models without calibration data: standard normal floats,
    zeros for integer inputs (ids and masks must stay in range, and 0 always is)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    feed = {}
    for spec in inputs:
        shape = concrete_shape(spec, profiles, input_shapes)
        if spec["dtype"].startswith("float"):
            feed[spec["name"]] = rng.standard_normal(shape).astype(spec["dtype"])
        else:
            feed[spec["name"]] = np.zeros(shape, dtype=spec["dtype"])
    return feed
