"""What an ONNX model takes and returns, in the manifest's terms (names, shapes, dtypes)."""
from __future__ import annotations

from pathlib import Path


def describe_io(model_or_path) -> dict:
    import onnx

    model = model_or_path
    if isinstance(model_or_path, (str, Path)):
        model = onnx.load(str(model_or_path), load_external_data=False)
    initializers = {i.name for i in model.graph.initializer}

    def values(items):
        out = []
        for v in items:
            if v.name in initializers:
                continue
            t = v.type.tensor_type
            shape = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in t.shape.dim]
            out.append({"name": v.name, "shape": shape,
                        "dtype": onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name if t.elem_type else None})
        return out

    return {"inputs": values(model.graph.input), "outputs": values(model.graph.output)}


def fixed_batch(io: dict) -> int | None:
    """The batch size the model's first input fixes, or None when the batch dim is dynamic."""
    shape = io["inputs"][0]["shape"]
    return shape[0] if shape and isinstance(shape[0], int) else None
