"""tflite.convert: ONNX -> .tflite (runs in the `litert` toolchain environment, Python 3.12).

1. Preparation (prepare.py): static input shapes, converter-safe node names, constant folding.
2. A float32 .tflite from the first converter route that works (routes.py: onnx2tf's
   flatbuffer_direct backend on the folded model, then on the unfolded one, then onnx2tf's
   TensorFlow backend where TensorFlow is installed).
3. fp16 (float16 weights, float32 compute and I/O), int8 (full integer, calibrated on the
   model's calibration data, int8 I/O: what the Edge TPU needs) and int8-dynamic (int8 weights,
   float activations) quantize that float32 file with ai-edge-quantizer (quantize.py). "full-int8" is accepted as the old name of "int8".
   A `tflite` int8 target checks the int8 file against the float one on the calibration samples
   and keeps float the ops that fail or lose the most (accuracy_fallback.py, `int8_min_cosine`);
   the metadata then counts the float ops (`quantization.float_ops`, `full_integer` false).
   The Edge TPU (`integer_only`) never keeps float ops.

Which route and quantizer produced the artifact is returned under "conversion" (the bundle's
provenance records it). Inputs of rank >= 3 become channels-last; calibration data is normalised
with (x - mean) / std and laid out the way the float file expects.
"""

from __future__ import annotations

import importlib.metadata
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from ..base import Step, StepContext, StepFailed
from . import layout
from .io_description import IoMismatch, describe_io

PRECISIONS = ("fp32", "fp16", "int8", "int8-dynamic")
ALIASES = {"full-int8": "int8"}
QUANT_TYPES = ("per-channel", "per-tensor")
IO_DTYPES = ("int8",)


class TfliteConvertStep(Step):
    name = "tflite.convert"
    version = "10"
    uses = ("onnx2tf", "onnx", "onnxsim", "numpy", "ai-edge-quantizer", "ai-edge-litert")
    inputs = ("model", "calibration?")
    outputs = ("model.tflite",)

    def required_inputs(self, params: dict[str, Any]) -> set[str]:
        precision = ALIASES.get(params.get("precision"), params.get("precision"))
        return {"model", "calibration"} if precision == "int8" else {"model"}

    def run(self, ctx: StepContext) -> dict[str, Any]:
        import onnx

        from . import prepare

        p = _params(ctx.params)
        started = time.perf_counter()
        source = onnx.load(str(ctx.input("model")), load_external_data=False)
        try:
            in_shapes = prepare.static_input_shapes(source, p["input_shapes"])
        except prepare.PrepareError as exc:
            raise StepFailed(str(exc)) from None
        out_shapes = [(vi.name, prepare.dims(vi)) for vi in source.graph.output]
        _check_domains(source)
        for name, shape in in_shapes.items():  # known before converting: fail in a second, not a minute
            if not shape:
                raise StepFailed(
                    f"input '{name}' is a scalar (shape []): TFLite makes it [1], which edgebuild's "
                    f"TFLite I/O description does not bind yet"
                )
        norm = layout.normalisation(p["mean"], p["std"])
        scratch = Path(tempfile.mkdtemp(prefix="edgebuild-tflite-"))
        try:
            # integer_only (the Edge TPU): activations ai-edge-quantizer leaves float are rewritten
            # first; a plain int8 target keeps them as float islands, faster on a CPU (measured)
            fp32, route, attempts, notes = convert_float_file(
                ctx.input("model"),
                in_shapes,
                scratch,
                int8=p["precision"] == "int8" and p["integer_only"],
                quantized=p["precision"] == "int8",
            )
            float_seconds = time.perf_counter() - started
            conversion = {
                "converter": route.name,
                "onnx2tf": _version("onnx2tf"),
                "preparation": notes,
                "failed_routes": attempts,
            }
            fp32_size = fp32.stat().st_size
            if p["precision"] == "fp32":
                shutil.copyfile(fp32, ctx.output("model.tflite"))
                calib_count = None
            else:
                samples = (
                    _calibration_samples(ctx, p, in_shapes, out_shapes, fp32, norm)
                    if p["precision"] == "int8"
                    else None
                )
                calib_count = len(samples) if samples else None
                recipe = _quantize_with_fallback(
                    fp32, ctx.output("model.tflite"), p, samples, conversion, scratch
                )
                conversion["quantizer"] = f"ai-edge-quantizer {_version('ai-edge-quantizer')} {recipe}"
            try:
                io_desc = describe_io(ctx.output("model.tflite"), list(in_shapes.items()), out_shapes, norm)
            except IoMismatch as exc:
                raise StepFailed(f"converted model: {exc}") from None
            _settle_ambiguous_outputs(io_desc, fp32, ctx.input("model"), in_shapes, out_shapes, norm)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        seconds = time.perf_counter() - started
        size = ctx.output("model.tflite").stat().st_size
        float_ops = float_op_count(ctx.output("model.tflite")) if p["precision"] == "int8" else None
        return {
            "io": io_desc,
            "precision": p["precision"],
            "conversion": conversion,
            "quantization": (
                {
                    "type": conversion.get("quant_type", p["quant_type"]),
                    "input_dtype": "int8",
                    "output_dtype": "int8",
                    "calibration_samples": calib_count,
                    # never "full int8" when ops compute in float (islands, accuracy fallback)
                    "float_ops": float_ops,
                    "full_integer": float_ops == 0,
                }
                if p["precision"] == "int8"
                else None
            ),
            "metrics": {
                "convert_seconds": round(seconds, 3),
                "float_convert_seconds": round(float_seconds, 3),
                "size_bytes": size,
                "size_ratio_vs_fp32": round(fp32_size / size, 3) if size else None,
            },
        }


def _settle_ambiguous_outputs(
    io_desc: dict, fp32: Path, onnx_path: Path, shapes: dict, out_shapes, norm
) -> None:
    """Outputs whose shape fits both channels-last and the identity ([1, 32, 32]) get the layout
    with which the float32 file reproduces onnxruntime on one random input (the outputs of a
    quantized file keep the float file's layout); recorded in the I/O description, which
    verification and the bundle's loader use. Where the probe cannot run, the default stays and
    verification judges it."""
    ambiguous = [
        k
        for k, e in enumerate(io_desc["outputs"])
        if len(layout.fitting_perms(e["source_shape"], e["shape"])) > 1
    ]
    if not ambiguous or any(
        len(layout.fitting_perms(e["source_shape"], e["shape"])) > 1 for e in io_desc["inputs"]
    ):
        return
    try:
        chosen = _probe_layouts(
            describe_io(fp32, list(shapes.items()), out_shapes, norm), fp32, onnx_path, shapes, ambiguous
        )
    except Exception:  # a runtime refusing the file: verification reports it
        return
    for k, perm in chosen.items():
        entry = io_desc["outputs"][k]
        entry["transpose"] = perm
        entry["layout"] = layout.layout_name(perm) if len(perm) >= 3 else "unchanged"


def _probe_layouts(io_desc: dict, tflite: Path, onnx_path: Path, shapes: dict, ambiguous: list[int]) -> dict:
    import numpy as np
    import onnxruntime as ort
    from ai_edge_litert.interpreter import Interpreter

    from .verify import _from_artifact, _to_artifact

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feed = {}
    for i in session.get_inputs():
        shape = shapes[i.name]
        feed[i.name] = (
            rng.integers(0, 4, shape).astype(np.int64 if "int64" in i.type else np.int32)
            if "int" in i.type
            else rng.uniform(0, 1, shape).astype(np.float32)
        )
    reference = session.run(None, feed)
    interp = Interpreter(model_path=str(tflite), num_threads=1)
    interp.allocate_tensors()
    for entry in io_desc["inputs"]:
        interp.set_tensor(entry["tensor_index"], _to_artifact(np, feed[entry["name"]], entry))
    interp.invoke()
    chosen = {}
    for k in ambiguous:
        entry = io_desc["outputs"][k]
        raw = interp.get_tensor(entry["tensor_index"])
        chosen[k] = min(
            layout.fitting_perms(entry["source_shape"], entry["shape"]),
            key=lambda perm: float(
                np.abs(_from_artifact(np, raw, dict(entry, transpose=perm)) - reference[k]).mean()
            ),
        )
    return chosen


def _quantize_with_fallback(fp32: Path, dst: Path, p: dict, samples, conversion: dict, scratch: Path) -> str:
    """ai-edge-quantizer with the asked weight granularity; where per-channel fails inside the
    quantizer, per-tensor is tried once and the granularity used is recorded. A `tflite` int8
    target (not integer_only) with `int8_min_cosine` set goes through the accuracy fallback
    (accuracy_fallback.py): ops that fail or lose too much stay float, and the metadata says which.
    Returns the recipe name."""
    from .quantize import QuantizerOpFailed, quantize

    tries = [p["quant_type"]] + (
        ["per-tensor"] if p["quant_type"] == "per-channel" and p["precision"] == "int8" else []
    )
    fallback = p["precision"] == "int8" and not p["integer_only"] and p["int8_min_cosine"] is not False
    errors = []
    for quant_type in tries:
        try:
            if fallback:
                recipe = _quantize_within(fp32, dst, quant_type, samples, p, conversion, scratch / quant_type)
            else:
                recipe = quantize(fp32, dst, p["precision"], quant_type, samples)
        except QuantizerOpFailed as exc:
            errors.append(
                f"{quant_type}: op {exc.op_name or '?'} (operator {exc.op_index} of the float "
                f".tflite): {str(exc)[:200]}"
            )
            continue
        except Exception as exc:
            errors.append(
                f"{quant_type}: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
            )
            continue
        if quant_type != p["quant_type"]:
            conversion["quant_type"] = quant_type
            conversion["quantizer_fallback"] = errors[0]
        if p["precision"] == "int8":  # say why, when the int8 file will likely miss the output gate
            from .diagnosis import isolated_activation_probe

            diagnosis = isolated_activation_probe(
                fp32,
                dst,
                quant_type,
                samples,
                scratch,
                "impossible" if p["integer_only"] else "tried" if fallback else "available",
                (conversion.get("int8_check") or {}).get("cosine_vs_float"),
            )
            if diagnosis:
                conversion["int8_diagnosis"] = diagnosis
        return recipe
    why = "; ".join(errors)
    if p["integer_only"]:
        why += " (the Edge TPU needs every op integer, so no op can stay float)"
    raise StepFailed(f"ai-edge-quantizer could not quantize the model ({p['precision']}): {why}")


def _quantize_within(
    fp32: Path, dst: Path, quant_type: str, samples, p: dict, conversion: dict, scratch: Path
) -> str:
    from .accuracy_fallback import quantize_within

    result = quantize_within(fp32, dst, quant_type, samples, float(p["int8_min_cosine"]), scratch)
    conversion["int8_check"] = {
        "cosine_vs_float": result.cosine,
        "min_cosine": p["int8_min_cosine"],
        "reached": result.reached,
        "samples": min(len(samples), 8),
        "data": "calibration",
        "rounds": result.rounds,
        "history": [{"float_ops_kept": n, "cosine": c} for n, c in result.history],
    }
    if result.kept_float:
        conversion["float_ops_kept"] = len(result.kept_float)
        conversion["float_ops"] = result.kept_float[:40]
        return f"{result.recipe}, {len(result.kept_float)} op(s) kept float for accuracy"
    return result.recipe


def float_op_count(path: Path) -> int:
    """Ops of the file that compute in float (QUANTIZE/DEQUANTIZE not counted): 0 = full integer."""
    from .schema import read_model

    sg = read_model(path).main
    return sum(
        1
        for op in sg.operators
        if op.op not in ("QUANTIZE", "DEQUANTIZE")
        and op.outputs
        and sg.tensors[op.outputs[0]].dtype in ("float32", "float16")
    )


def _params(params: dict[str, Any]) -> dict[str, Any]:
    p = {
        "precision": "fp32",
        "input_shapes": {},
        "quant_type": "per-channel",
        "input_dtype": "int8",
        "output_dtype": "int8",
        "mean": 0.0,
        "std": 1.0,
        "calibration_limit": 64,
        "integer_only": False,
        "int8_min_cosine": 0.99,
    }
    p.update({k: v for k, v in params.items() if v is not None})
    p["precision"] = ALIASES.get(p["precision"], p["precision"])
    if p["precision"] not in PRECISIONS:
        raise StepFailed(
            f"parameter 'precision': expected one of {', '.join(PRECISIONS)}, got {p['precision']!r}"
        )
    if p["quant_type"] not in QUANT_TYPES:
        raise StepFailed(
            f"parameter 'quant_type': expected one of {', '.join(QUANT_TYPES)}, got {p['quant_type']!r}"
        )
    for key in ("input_dtype", "output_dtype"):
        if p[key] not in IO_DTYPES:
            raise StepFailed(
                f"parameter '{key}': expected one of {', '.join(IO_DTYPES)} (ai-edge-quantizer "
                f"writes int8 I/O), got {p[key]!r}"
            )
    if not isinstance(p["integer_only"], bool):
        raise StepFailed(f"parameter 'integer_only': expected true or false, got {p['integer_only']!r}")
    mc = p["int8_min_cosine"]
    if mc is not False and (isinstance(mc, bool) or not isinstance(mc, (int, float)) or not -1 <= mc <= 1):
        raise StepFailed(f"parameter 'int8_min_cosine': expected a number in [-1, 1] or false, got {mc!r}")
    if not isinstance(p["calibration_limit"], int) or p["calibration_limit"] < 1:
        raise StepFailed(
            f"parameter 'calibration_limit': expected a positive integer, got {p['calibration_limit']!r}"
        )
    try:
        layout.normalisation(p["mean"], p["std"])
    except ValueError as exc:
        raise StepFailed(str(exc)) from None
    return p


def _check_domains(model) -> None:
    """Name the first node of a non-standard domain: no TFLite converter handles those."""
    for node in model.graph.node:
        if node.domain not in ("", "ai.onnx"):
            raise StepFailed(
                f"op {node.domain}.{node.op_type} (node '{node.name}') is not a standard ONNX op; "
                f"onnx2tf cannot convert it"
            )


def convert_float_file(
    model: Path, shapes: dict[str, list[int]], scratch: Path, int8: bool = False, quantized: bool = False
):
    """Preparation plus the route chain for one ONNX file: (float32 .tflite, route, failed routes,
    preparation notes). Raises StepFailed naming the op when no route works. Also used by the
    coverage measurements (benchmarks/coverage_honesty.py), so they measure what builds get."""
    import onnx

    from . import prepare

    prepared = {
        "simplified": scratch / "simplified" / "model.onnx",
        "static": scratch / "static" / "model.onnx",
    }
    for path in prepared.values():
        path.parent.mkdir(parents=True, exist_ok=True)
    notes = prepare.prepare(
        model, shapes, prepared["simplified"], prepared["static"], int8=int8, quantized=quantized
    )
    node_types = {n.name: n.op_type for n in onnx.load(str(model), load_external_data=False).graph.node}
    files, route, attempts = _convert_float(prepared, scratch, node_types)
    return files["fp32"], route, attempts, notes


def _convert_float(prepared: dict[str, Path], scratch: Path, node_types: dict[str, str]):
    """The float files of the first route that works, that route, and the routes that failed."""
    from . import routes

    attempts = []
    for i, route in enumerate(r for r in routes.ROUTES if routes.available(r)):
        out = scratch / f"out{i}"
        try:
            return routes.convert(route, prepared[route.model], out, node_types), route, attempts
        except routes.RouteFailed as exc:
            attempts.append({"route": route.name, "error": str(exc)})
    tried = "; ".join(f"{a['route']}: {a['error']}" for a in attempts)
    raise StepFailed(f"no converter route worked ({tried[:900]})")


def _calibration_samples(
    ctx: StepContext, p: dict, shapes: dict[str, list[int]], out_shapes, fp32: Path, norm: dict
) -> list[dict]:
    """Calibration samples keyed by the float model's signature input names, normalised and laid out
    as that file expects."""
    import numpy as np

    from edgebuild.evaldata import load_npz, sample_rows

    from .schema import read_model
    from .verify import _normalise

    path = ctx.inputs.get("calibration")
    if path is None:
        raise StepFailed(
            'int8 needs calibration data: set calibration = "...npz" on the model in targets.toml '
            '(or use precision = "int8-dynamic")'
        )
    try:
        specs = [{"name": name, "shape": shape} for name, shape in shapes.items()]
        data = load_npz(Path(path), list(shapes), "calibration", specs=specs)
    except (OSError, ValueError) as exc:
        raise StepFailed(f"calibration file {Path(path).name}: cannot be read as .npz ({exc})") from None
    model = read_model(fp32)
    sig = model.signatures[0] if model.signatures else None
    if sig is None:
        raise StepFailed("the converted float model has no signature; cannot feed calibration data")
    by_index = {index: name for name, index in sig.inputs.items()}
    io_desc = describe_io(model, list(shapes.items()), out_shapes, norm)
    rows = sample_rows(specs)  # one model run: each input's fixed leading dim
    columns, count = {}, None
    for entry in io_desc["inputs"]:
        name = entry["name"]
        integer = np.dtype(entry["dtype"]).kind in "iub"  # token ids, byte values: fed as they are
        arr = np.asarray(data[name]) if integer else np.asarray(data[name], dtype=np.float32)
        arr = arr[: p["calibration_limit"] * rows[name]]
        arr = arr.astype(entry["dtype"]) if integer else _normalise(np, arr, norm)
        columns[by_index[entry["tensor_index"]]] = (
            np.ascontiguousarray(arr.transpose(entry["transpose"])),
            rows[name],
        )
        count = len(arr) // rows[name] if count is None else min(count, len(arr) // rows[name])
    samples = [
        {key: arr[k * batch : (k + 1) * batch] for key, (arr, batch) in columns.items()}
        for k in range(count or 0)
    ]
    if not samples:
        raise StepFailed(
            f"calibration file {Path(path).name}: no complete sample of batch size "
            f"{min(b for _, b in columns.values())}"
        )
    return samples


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "?"
