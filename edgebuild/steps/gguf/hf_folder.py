"""Read a Hugging Face model folder: config.json and (sharded) safetensors, one tensor at a time.

The safetensors format is an 8-byte little-endian header length, a JSON header mapping tensor names
to dtype, shape and byte offsets, then the raw data. Reading it through numpy memmaps keeps memory
bounded by the largest single tensor, needs no torch, and handles bf16 (which numpy lacks) by
widening the bit patterns to float32.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from edgebuild.steps.base import StepFailed

# safetensors dtype -> numpy dtype name; BF16 is read as raw bit patterns and widened in `load`
_NUMPY_DTYPES = {
    "F64": "float64",
    "F32": "float32",
    "F16": "float16",
    "BF16": "uint16",
    "I64": "int64",
    "I32": "int32",
    "I16": "int16",
    "I8": "int8",
    "U8": "uint8",
    "BOOL": "bool",
}


@dataclass(frozen=True)
class TensorEntry:
    name: str
    dtype: str  # safetensors dtype name, e.g. "BF16"
    shape: tuple[int, ...]
    file: Path
    start: int  # absolute byte offset in `file`
    end: int


class ModelFolder:
    """A Hugging Face model folder, read lazily."""

    def __init__(self, path: Path):
        self.path = Path(path)
        if not self.path.is_dir():
            raise StepFailed(
                f"model source {self.path} is not a folder (GGUF needs a Hugging Face model folder)"
            )
        self._tensors: dict[str, TensorEntry] | None = None

    # --- JSON files -------------------------------------------------------------------------
    def json(self, name: str, required: bool = True) -> dict[str, Any] | None:
        file = self.path / name
        if not file.is_file():
            if required:
                raise StepFailed(f"{file}: missing (a Hugging Face model folder needs it)")
            return None
        try:
            return json.loads(file.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise StepFailed(f"{file}: not valid JSON ({exc})") from None

    @property
    def config(self) -> dict[str, Any]:
        return self.json("config.json")  # type: ignore[return-value]

    # --- safetensors ------------------------------------------------------------------------
    def safetensors_files(self) -> list[Path]:
        index = self.path / "model.safetensors.index.json"
        if index.is_file():
            weight_map = self.json(index.name)["weight_map"]  # type: ignore[index]
            files = sorted({self.path / shard for shard in weight_map.values()})
            missing = [f.name for f in files if not f.is_file()]
            if missing:
                raise StepFailed(f"{index}: shard(s) {', '.join(missing)} listed in weight_map are missing")
            return files
        files = sorted(self.path.glob("*.safetensors"))
        if not files:
            raise StepFailed(
                f"{self.path}: no *.safetensors weights (pytorch_model.bin is not supported; "
                "re-save with safe_serialization=True)"
            )
        return files

    @property
    def tensors(self) -> dict[str, TensorEntry]:
        if self._tensors is None:
            self._tensors = {}
            for file in self.safetensors_files():
                for entry in _read_header(file):
                    self._tensors[entry.name] = entry
        return self._tensors

    def load(self, name: str):
        """One tensor as a float32 (or integer) numpy array; only this tensor is read into memory."""
        import numpy as np  # numpy only when weights are read, so `check` stays light

        entry = self.tensors[name]
        raw = np.memmap(
            entry.file, dtype=_NUMPY_DTYPES[entry.dtype], mode="r", offset=entry.start, shape=entry.shape
        )
        if entry.dtype == "BF16":
            # bf16 is the upper half of a float32: shift the bits into place
            return (raw.astype(np.uint32) << 16).view(np.float32)
        if raw.dtype.kind == "f":
            return np.asarray(raw, dtype=np.float32)
        return np.array(raw)

    def iter_tensors(self) -> Iterator[tuple[str, TensorEntry]]:
        yield from sorted(self.tensors.items())

    def weights_nbytes(self) -> int:
        return sum(e.end - e.start for e in self.tensors.values())


def _read_header(file: Path) -> list[TensorEntry]:
    with open(file, "rb") as fh:
        head = fh.read(8)
        if len(head) != 8:
            raise StepFailed(f"{file}: truncated safetensors file")
        (length,) = struct.unpack("<Q", head)
        try:
            header = json.loads(fh.read(length))
        except json.JSONDecodeError as exc:
            raise StepFailed(f"{file}: corrupt safetensors header ({exc})") from None
    base = 8 + length
    entries = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] not in _NUMPY_DTYPES:
            raise StepFailed(f"{file}: tensor {name} has unsupported dtype {info['dtype']}")
        start, end = info["data_offsets"]
        entries.append(TensorEntry(name, info["dtype"], tuple(info["shape"]), file, base + start, base + end))
    return entries
