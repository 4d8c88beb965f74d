"""The artifact's inputs and outputs, described for the manifest and the loader.

Each entry ties a TFLite tensor to the source model's tensor of the same role: the source name
(the signature name onnx2tf keeps), the artifact's shape, dtype and quantization, and the
permutation from the source layout, so data prepared for the ONNX model can be fed unchanged in
meaning: x -> (x - mean) / std -> transpose -> quantize.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from . import layout
from .schema import TfliteModel, read_model

Endpoint = tuple[str, list]  # (source name, source shape; dynamic dims as -1)


class IoMismatch(ValueError):
    pass


def describe_io(
    model: TfliteModel | str | Path,
    source_inputs: Sequence[Endpoint],
    source_outputs: Sequence[Endpoint],
    norm: dict[str, Any] | None = None,
) -> dict[str, list]:
    if not isinstance(model, TfliteModel):
        model = read_model(model)
    sg = model.main
    sig = model.signatures[0] if model.signatures else None
    inputs = _match(sg, sig.inputs if sig else {}, sg.inputs, source_inputs, "input")
    outputs = _match(sg, sig.outputs if sig else {}, sg.outputs, source_outputs, "output")
    for entry in inputs:
        entry["normalization"] = dict(norm or {"mean": 0.0, "std": 1.0})
    return {"inputs": inputs, "outputs": outputs}


def _match(
    sg, by_name: dict[str, int], ordered: list[int], sources: Sequence[Endpoint], role: str
) -> list[dict]:
    if len(ordered) != len(sources):
        raise IoMismatch(f"the TFLite model has {len(ordered)} {role}s, the source model {len(sources)}")
    entries = []
    free = list(ordered)
    for pos, (name, source_shape) in enumerate(sources):
        index = by_name.get(name)
        if index is None or index not in free:  # signature names differ (sanitised): use the order
            index = ordered[pos] if ordered[pos] in free else free[0]
        free.remove(index)
        t = sg.tensors[index]
        perm = layout.infer_perm(source_shape, t.shape)
        if perm is None:
            raise IoMismatch(
                f"{role} '{name}': source shape {source_shape} does not match the TFLite "
                f"shape {t.shape} in any known layout"
            )
        entry = {
            "name": name,
            "tensor": t.name,
            "tensor_index": index,
            "shape": list(t.shape),
            "dtype": t.dtype,
            "layout": layout.layout_name(perm) if len(perm) >= 3 else "unchanged",
            "source_shape": list(source_shape),
            "transpose": perm,
        }
        if t.dtype in ("int8", "uint8", "int16") and t.scale:
            entry["quantization"] = {"scale": float(t.scale[0]), "zero_point": int(t.zero_point[0])}
        entries.append(entry)
    return entries
