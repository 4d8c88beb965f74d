"""Reading the model's evaluation `.npz` as a series of model-shaped input batches."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgebuild.evaldata import read_npz
from edgebuild.steps.base import StepFailed


def load(path: Path, inputs: list, max_samples: int) -> tuple[list[dict[str, Any]], Any]:
    """Batches shaped like the converted model's inputs, and the matching labels (or None)."""
    data = read_npz(path, f"evaluation data {Path(path).name}")
    missing = [info.name for info in inputs if info.name not in data]
    if missing:
        raise StepFailed(
            f"{path.name}: no array '{missing[0]}' for model input '{missing[0]}' (arrays: {', '.join(data)})"
        )
    arrays = {info.name: data[info.name] for info in inputs}
    batch = inputs[0].shape[0] if inputs[0].shape else 1
    count = min(len(a) for a in arrays.values())
    batches = []
    for start in range(0, min(count, max_samples) - batch + 1, batch):
        batches.append(
            {info.name: _shaped(path, info, arrays[info.name][start : start + batch]) for info in inputs}
        )
    if not batches:
        raise StepFailed(f"{path.name}: fewer samples ({count}) than the model's batch size {batch}")
    labels = data["labels"][: len(batches) * batch] if "labels" in data else None
    return batches, labels


def _shaped(path: Path, info, values):
    import numpy as np

    if int(np.prod(values.shape)) != int(np.prod(info.shape)):
        raise StepFailed(
            f"{path.name}: array '{info.name}' has samples of shape {list(values.shape[1:])}, "
            f"the converted model's input is {info.shape}"
        )
    return values.reshape(info.shape).astype(info.dtype)
