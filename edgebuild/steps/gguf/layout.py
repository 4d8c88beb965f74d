"""What an architecture module hands the GGUF writer: hyperparameter keys and a plan of tensors,
each loaded only when it is written."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class PlannedTensor:
    name: str  # GGUF tensor name, e.g. "blk.0.attn_q.weight"
    shape: tuple[int, ...]  # numpy (row-major) shape of the data written
    load: Callable[[], Any]  # returns the float32 numpy array; called once, while writing
    keep_f32: bool = False  # norms, biases, rope factors: never quantized
