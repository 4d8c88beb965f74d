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
            shape = [dim_of(d) for d in t.shape.dim]
            out.append(
                {
                    "name": v.name,
                    "shape": shape,
                    "dtype": onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name if t.elem_type else None,
                }
            )
        return out

    return {"inputs": values(model.graph.input), "outputs": values(model.graph.output)}


def read_onnx(path, shown: str | None = None):
    """The ModelProto of a user's .onnx file (no external data); a file that is not ONNX is the
    user's mistake: one-line ConfigError naming it."""
    import onnx

    from edgebuild.errors import ConfigError

    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"{shown or path}: cannot be read as ONNX ({first})") from None


def dim_of(dim) -> int | str | None:
    """One ONNX dimension: its size, or its symbolic name / None when dynamic. A dim_value of -1
    (or 0), which Paddle exports write for dynamic axes, is dynamic too."""
    if dim.HasField("dim_value") and dim.dim_value > 0:
        return int(dim.dim_value)
    return dim.dim_param or None


def mark_negative_dims_dynamic(model) -> int:
    """Rewrite graph input/output dims written as dim_value <= 0 into named dynamic dims, the form
    every ONNX tool understands; returns how many were rewritten."""
    count = 0
    for value in list(model.graph.input) + list(model.graph.output):
        for axis, dim in enumerate(value.type.tensor_type.shape.dim):
            if dim.HasField("dim_value") and dim.dim_value <= 0:
                dim.Clear()
                dim.dim_param = f"{value.name}_dim{axis}"
                count += 1
    return count
