"""Calibration and evaluation data: .npz files with one array per model input (batch first), and
for evaluation optionally `labels`."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from edgebuild.steps.base import StepFailed


def load_npz(path: Path, input_names: list[str], what: str) -> dict:
    import numpy as np

    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    missing = [n for n in input_names if n not in arrays]
    if missing:
        raise StepFailed(f"{what} data {path.name} has no array for model input(s) {', '.join(missing)} "
                         f"(arrays: {', '.join(sorted(arrays))})")
    counts = {len(arrays[n]) for n in input_names}
    if len(counts) != 1:
        raise StepFailed(f"{what} data {path.name}: inputs have different sample counts {sorted(counts)}")
    return arrays


def batches(arrays: dict, input_names: list[str], batch: int | None, limit: int | None = None) -> Iterator[dict]:
    """Feeds of `batch` samples (the model's fixed batch), or all at once when the batch dim is dynamic."""
    total = len(arrays[input_names[0]])
    if limit is not None:
        total = min(total, limit)
    size = batch or total
    for start in range(0, total - size + 1, size):
        yield {n: arrays[n][start:start + size] for n in input_names}


def stratified_sample(labels, count: int, seed: int = 0):
    """Indices of up to `count` samples keeping each class's share (at least one per class)."""
    import numpy as np

    labels = np.asarray(labels)
    if count >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    chosen = []
    classes, counts = np.unique(labels, return_counts=True)
    for cls, n in zip(classes, counts):
        take = max(1, round(count * n / len(labels)))
        idx = np.flatnonzero(labels == cls)
        chosen.extend(rng.choice(idx, min(take, len(idx)), replace=False))
    return np.sort(np.array(chosen))
