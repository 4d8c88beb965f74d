"""tflite.convert: ONNX -> .tflite with onnx2tf (runs in the `onnx2tf` toolchain environment).

Precisions: fp32, fp16, int8 (dynamic range: int8 weights, float activations and I/O) and
full-int8 (every tensor int8, calibrated on the model's calibration data, int8 or uint8 I/O;
what the Edge TPU needs). Inputs of rank >= 3 become channels-last; calibration data is
transposed the same way and normalised with the recorded (x - mean) / std.

Nothing is downloaded: onnx2tf 1.29 fetches a sample-image file for 4-D 3-channel inputs even
when calibration data is given, unless that file is in its working directory, so the step runs
onnx2tf in a scratch folder holding a locally made file of that name.
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from ..base import Step, StepContext, StepFailed
from . import layout
from .io_description import IoMismatch, describe_io

PRECISIONS = {"fp32": "float32", "fp16": "float16", "int8": "dynamic_range_quant",
              "full-int8": "full_integer_quant"}
SAMPLE_FILE = "calibration_image_sample_data_20x128x128x3_float32.npy"
QUANT_TYPES = ("per-channel", "per-tensor")
IO_DTYPES = ("int8", "uint8", "float32")


class TfliteConvert(Step):
    name = "tflite.convert"
    version = "1"
    uses = ("onnx2tf", "tensorflow", "tf-keras", "onnx", "onnxsim", "numpy")
    inputs = ("model", "calibration?")
    outputs = ("model.tflite",)

    def run(self, ctx: StepContext) -> dict[str, Any]:
        import numpy as np
        import onnx

        p = _params(ctx.params)
        source = onnx.load(str(ctx.input("model")), load_external_data=False)
        _check_ops(source)
        in_shapes = _static_input_shapes(source, p["input_shapes"])
        out_shapes = _output_shapes(source)
        scratch = Path(tempfile.mkdtemp(prefix="edgebuild-onnx2tf-"))
        try:
            model_path = scratch / "model.onnx"
            _write_static_copy(ctx.input("model"), in_shapes, model_path)
            # onnx2tf's offline pitfall: this file must exist in its working directory (contents unused
            # when calibration data is given, so zeros are enough).
            np.save(scratch / SAMPLE_FILE, np.zeros((20, 128, 128, 3), np.float32))
            calib = _calibration_files(ctx, p, in_shapes, scratch) if p["precision"] == "full-int8" else None
            started = time.perf_counter()
            node_types = {n.name: n.op_type for n in source.graph.node}
            log = _run_onnx2tf(model_path, scratch / "out", p, in_shapes, calib, node_types)
            seconds = time.perf_counter() - started
            produced = scratch / "out" / f"model_{PRECISIONS[p['precision']]}.tflite"
            if not produced.is_file():
                raise StepFailed(_failure_message(log, f"onnx2tf did not write {produced.name}", node_types))
            shutil.copyfile(produced, ctx.output("model.tflite"))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

        norm = layout.normalisation(p["mean"], p["std"])
        try:
            io_desc = describe_io(ctx.output("model.tflite"), list(in_shapes.items()), out_shapes, norm)
        except IoMismatch as exc:
            raise StepFailed(f"converted model: {exc}") from None
        return {
            "io": io_desc,
            "precision": p["precision"],
            "quantization": ({"type": p["quant_type"], "input_dtype": p["input_dtype"],
                              "output_dtype": p["output_dtype"], "calibration_samples": calib[1]}
                             if calib else None),
            "metrics": {"convert_seconds": round(seconds, 3),
                        "size_bytes": ctx.output("model.tflite").stat().st_size},
        }


def _params(params: dict[str, Any]) -> dict[str, Any]:
    p = {"precision": "fp32", "input_shapes": {}, "quant_type": "per-channel", "input_dtype": "int8",
         "output_dtype": "int8", "mean": 0.0, "std": 1.0, "calibration_limit": 500}
    p.update({k: v for k, v in params.items() if v is not None})
    if p["precision"] not in PRECISIONS:
        raise StepFailed(f"parameter 'precision': expected one of {', '.join(PRECISIONS)}, got {p['precision']!r}")
    if p["quant_type"] not in QUANT_TYPES:
        raise StepFailed(f"parameter 'quant_type': expected one of {', '.join(QUANT_TYPES)}, got {p['quant_type']!r}")
    for key in ("input_dtype", "output_dtype"):
        if p[key] not in IO_DTYPES:
            raise StepFailed(f"parameter '{key}': expected one of {', '.join(IO_DTYPES)}, got {p[key]!r}")
    try:
        layout.normalisation(p["mean"], p["std"])
    except ValueError as exc:
        raise StepFailed(str(exc)) from None
    return p


def _check_ops(model) -> None:
    """Name the first node onnx2tf has no converter for, before TensorFlow spends time on it."""
    import importlib.util
    for node in model.graph.node:
        if node.domain not in ("", "ai.onnx"):
            raise StepFailed(f"op {node.domain}.{node.op_type} (node '{node.name}') is not a standard ONNX op; "
                             f"onnx2tf cannot convert it")
        if importlib.util.find_spec(f"onnx2tf.ops.{node.op_type}") is None:
            raise StepFailed(f"op {node.op_type} (node '{node.name}') is not supported by onnx2tf")


def _dims(value_info) -> list:
    return [d.dim_value if d.HasField("dim_value") else -1 for d in value_info.type.tensor_type.shape.dim]


def _static_input_shapes(model, overrides: dict[str, list]) -> dict[str, list[int]]:
    initializers = {i.name for i in model.graph.initializer}
    shapes = {}
    for vi in model.graph.input:
        if vi.name in initializers:
            continue
        shape = list(overrides.get(vi.name) or _dims(vi))
        if any(d <= 0 for d in shape):
            raise StepFailed(f"input '{vi.name}' has a dynamic shape {_dims(vi)}; TFLite needs static shapes: "
                             f"set input_shapes = {{ {vi.name} = [...] }} on the model in targets.toml")
        shapes[vi.name] = shape
    unknown = set(overrides) - set(shapes)
    if unknown:
        raise StepFailed(f"input_shapes names '{sorted(unknown)[0]}', which is not an input of the model "
                         f"(inputs: {', '.join(shapes)})")
    return shapes


def _write_static_copy(src: Path, shapes: dict[str, list[int]], dst: Path) -> None:
    """The model with its input shapes fixed in the graph itself. onnx2tf's own shape options leave
    a dynamic batch in the TFLite signature (shape_signature -1, which the Edge TPU delegate refuses)
    or break some graphs (batch_size); a static graph converts to static tensors everywhere."""
    import onnx
    model = onnx.load(str(src))
    for vi in model.graph.input:
        if vi.name in shapes:
            for dim, value in zip(vi.type.tensor_type.shape.dim, shapes[vi.name]):
                dim.ClearField("dim_param")
                dim.dim_value = value
    del model.graph.value_info[:]          # stale dynamic intermediate shapes; onnx2tf re-infers them
    onnx.save(model, str(dst))


def _output_shapes(model) -> list[tuple[str, list]]:
    return [(vi.name, _dims(vi)) for vi in model.graph.output]


def _calibration_files(ctx: StepContext, p: dict, shapes: dict[str, list[int]], scratch: Path):
    import numpy as np
    path = ctx.inputs.get("calibration")
    if path is None:
        raise StepFailed("full-int8 needs calibration data: set calibration = \"...npz\" on the model in targets.toml")
    try:
        data = np.load(path)
    except Exception as exc:
        raise StepFailed(f"calibration file {Path(path).name}: cannot be read as .npz ({exc})") from None
    entries, count = [], None
    for name, shape in shapes.items():
        if name not in data.files:
            raise StepFailed(f"calibration file {Path(path).name}: no array named '{name}' "
                             f"(model inputs: {', '.join(shapes)}; found: {', '.join(data.files)})")
        arr = np.asarray(data[name], dtype=np.float32)
        if list(arr.shape[1:]) != list(shape[1:]):
            raise StepFailed(f"calibration file {Path(path).name}: '{name}' has samples of shape "
                             f"{list(arr.shape[1:])}, the model expects {shape[1:]} (batch first)")
        arr = arr[: int(p["calibration_limit"])]
        perm = layout.channels_last_perm(arr.ndim)
        nhwc = np.ascontiguousarray(arr.transpose(perm))
        np.save(scratch / f"calib_{len(entries)}.npy", nhwc)
        mean, std = (np.asarray(p[k], np.float32) for k in ("mean", "std"))
        entries.append([name, str(scratch / f"calib_{len(entries)}.npy"), mean, std])
        count = len(arr) if count is None else min(count, len(arr))
    return entries, count


def _run_onnx2tf(model_path: Path, out_dir: Path, p: dict, shapes: dict, calib, node_types: dict) -> str:
    import onnx2tf
    kwargs = dict(input_onnx_file_path=str(model_path), output_folder_path=str(out_dir), non_verbose=True,
                  output_signaturedefs=True)
    if p["precision"] == "int8":
        kwargs["output_dynamic_range_quantized_tflite"] = True
    if p["precision"] == "full-int8":
        kwargs.update(output_integer_quantized_tflite=True, quant_type=p["quant_type"],
                      custom_input_op_name_np_data_path=calib[0],
                      input_quant_dtype=p["input_dtype"], output_quant_dtype=p["output_dtype"])
    buf = io.StringIO()
    cwd = os.getcwd()
    os.chdir(model_path.parent)
    try:
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
            onnx2tf.convert(**kwargs)
    except SystemExit:
        raise StepFailed(_failure_message(buf.getvalue(), "onnx2tf stopped", node_types)) from None
    except Exception as exc:
        raise StepFailed(_failure_message(buf.getvalue() + f"\n{type(exc).__name__}: {_exception_summary(exc)}",
                                          f"onnx2tf failed: {type(exc).__name__}", node_types)) from None
    finally:
        os.chdir(cwd)
    return buf.getvalue()


def _exception_summary(exc: Exception) -> str:
    """Keras wraps the real TensorFlow error: 'Exception encountered when calling layer "L"' on the
    first line, the cause on the next; keep the layer and the cause, drop the node dump."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    if not lines:
        return ""
    layer = re.match(r'Exception encountered when calling layer "([^"]+)"', lines[0])
    if layer and len(lines) > 1:
        return f"{lines[1].split(' for ' + chr(39) + '{{node')[0]} (in TensorFlow layer {layer.group(1)})"
    return lines[0]


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_GENERATED_NAME = re.compile(r"sng_([A-Za-z0-9]+)_\d+")
_EXCEPTION_LINE = re.compile(r"^(?:[\w.]+\.)?(\w*(?:Error|Exception)): (.+)$")


def _failure_message(log: str, fallback: str, node_types: dict[str, str] | None = None) -> str:
    """One line naming the ONNX op that failed and why, from onnx2tf's and TensorFlow's logs.

    onnx2tf reports a failing node as `onnx_op_name: NAME` after the traceback; the op type comes
    from the model (`node_types`). TensorFlow's converter names TFLite ops as 'tfl.NAME'."""
    text = _ANSI.sub("", log)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    errors = [m for m in (_EXCEPTION_LINE.match(ln) for ln in lines) if m]
    reason = f"{errors[-1].group(1)}: {errors[-1].group(2)}" if errors else fallback
    names = re.findall(r"onnx_op_name: (\S+)", text)
    if names:
        node = names[-1]
        named = _GENERATED_NAME.fullmatch(node)   # onnx2tf names unnamed nodes sng_<Op>_<n>
        op_type = (node_types or {}).get(node) or (named.group(1) if named else "?")
        return f"op {op_type} (node '{node}') could not be converted by onnx2tf: {reason[:300]}"
    tf_op = re.search(r"'tfl\.(\w+)' op ([^\n]+)", text)
    if tf_op:
        return f"TFLite op {tf_op.group(1).upper()} could not be converted: {tf_op.group(2)[:300]}"
    return reason[:400]
