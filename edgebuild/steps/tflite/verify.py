"""tflite.verify: run the .tflite with ai-edge-litert against the onnxruntime fp32 reference.

Runs in edgebuild's own environment. On the evaluation set (else the calibration set, else inputs
generated from the model's input dtypes: edgebuild.evaldata.verification_data) it measures output
error, top-1 agreement with the reference and, when the set has `labels`, accuracy of both and the
per-class drop; gates (parameters a target may override in targets.toml) turn a miss into a failure.
Writes `selftest.npz` for the bundle: a raw source-layout input and the artifact's output.
"""

from __future__ import annotations

import resource
from typing import Any

from edgebuild.evaldata import batches, sample_rows, verification_data
from edgebuild.int8_diagnosis import explain
from edgebuild.metrics import (
    CONVERTED_OUTPUT_GATE_DEFAULTS,
    bad_gates,
    check_gates,
    compare,
    compare_outputs,
    latency,
    resolve_gates,
)
from edgebuild.npzfile import save_npz

from ..base import Step, StepContext, StepFailed
from . import layout
from .io_description import IoMismatch, describe_io
from .schema import read_model

_ONNX_INT_TYPES = {
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(bool)": "bool",
}
# gate parameters a target may set; false (or absent) means not checked; "auto" (the two per-output
# gates) means the precision's default for a converted artifact (metrics.CONVERTED_OUTPUT_GATE_DEFAULTS)
GATES = (
    "min_top1_agreement",
    "max_accuracy_drop",
    "max_class_drop",
    "max_abs_error",
    "min_cosine",
    "min_output_cosine",
    "max_output_rel_error",
)


class TfliteVerifyStep(Step):
    name = "tflite.verify"
    version = "7"
    uses = ("ai-edge-litert", "onnxruntime", "numpy")
    inputs = ("model", "reference", "evaluation?", "calibration?")
    fallback_inputs = {"calibration": "evaluation"}
    outputs = ("selftest.npz",)

    def required_inputs(self, params: dict) -> set[str]:
        from edgebuild.errors import ConfigError

        problems = bad_gates({g: params[g] for g in GATES if g in params})
        if problems:  # found while planning: a configuration mistake (exit 2)
            raise ConfigError("; ".join(problems))
        return super().required_inputs(params)

    def run(self, ctx: StepContext) -> dict[str, Any]:
        import numpy as np
        import onnxruntime as ort
        from ai_edge_litert.interpreter import Interpreter

        params = ctx.params
        try:
            norm = layout.normalisation(params.get("mean", 0.0), params.get("std", 1.0))
        except ValueError as exc:
            raise StepFailed(str(exc)) from None
        session = ort.InferenceSession(str(ctx.input("reference")), providers=["CPUExecutionProvider"])
        overrides = params.get("input_shapes") or {}
        src_in = [(i.name, list(overrides.get(i.name) or _dims(i.shape))) for i in session.get_inputs()]
        src_out = [(o.name, _dims(o.shape)) for o in session.get_outputs()]
        try:
            io_desc = describe_io(read_model(ctx.input("model")), src_in, src_out, norm)
        except IoMismatch as exc:
            raise StepFailed(f"{ctx.input('model').name}: {exc}") from None
        # the converter's I/O description settles layouts the shapes leave open ([1, 32, 32] outputs)
        made = (ctx.upstream.get("model") or {}).get("io") or {}
        for role in ("inputs", "outputs"):
            for entry, known in zip(io_desc[role], made.get(role, [])):
                if known.get("tensor_index") == entry["tensor_index"] and "transpose" in known:
                    entry["transpose"], entry["layout"] = (
                        known["transpose"],
                        known.get("layout", entry["layout"]),
                    )

        # integer inputs (token ids, byte values) keep their type and are not normalised
        int_types = {
            i.name: _ONNX_INT_TYPES[i.type] for i in session.get_inputs() if i.type in _ONNX_INT_TYPES
        }
        specs = [
            {
                "name": name,
                "shape": [d if d > 0 else None for d in shape],
                "dtype": int_types.get(name, "float32"),
            }
            for name, shape in src_in
        ]
        data, labels, data_note = verification_data(
            {k: ctx.inputs.get(k) for k in ("evaluation", "calibration")}, specs, params, count=32
        )
        rows = sample_rows(specs)  # one model run: each input's fixed leading dim
        batch = rows[src_in[0][0]]
        feeds = list(batches(data, [name for name, _ in src_in], rows, int(params.get("max_samples", 500))))
        if not feeds:
            raise StepFailed(f"{data_note}: fewer samples than the batch size {batch}")
        count = len(feeds) * batch

        interp = Interpreter(model_path=str(ctx.input("model")), num_threads=1)
        interp.allocate_tensors()
        refs, arts = [], []
        for sample in feeds:
            feed = {
                name: (
                    np.asarray(sample[name]).astype(int_types[name])
                    if name in int_types
                    else _normalise(np, np.asarray(sample[name], np.float32), norm)
                )
                for name, _ in src_in
            }
            refs.append(session.run(None, feed))
            for entry in io_desc["inputs"]:
                interp.set_tensor(entry["tensor_index"], _to_artifact(np, feed[entry["name"]], entry))
            interp.invoke()
            arts.append(
                [_from_artifact(np, interp.get_tensor(e["tensor_index"]), e) for e in io_desc["outputs"]]
            )

        ref = [np.concatenate([r[k] for r in refs]) for k in range(len(src_out))]
        art = [np.concatenate([a[k] for a in arts]) for k in range(len(src_out))]
        metrics = compare(ref[0], art[0], None if labels is None else labels[:count])
        metrics["data"] = data_note
        # every output's agreement (the first one's too), for the per-output gates
        metrics["outputs"] = compare_outputs(
            [(r, a, batch) for r, a in zip(refs, arts)], [name for name, _ in src_out]
        )
        metrics["latency"] = dict(latency(interp.invoke), threads=1, batch=batch)
        metrics["size_bytes"] = ctx.input("model").stat().st_size
        # peak resident memory of this verification process (reference, artifact and data together)
        metrics["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        _write_selftest(np, ctx.output("selftest.npz"), src_in, src_out, feeds[0], arts[0], io_desc)
        gates = resolve_gates(
            {g: params.get(g) for g in GATES},
            params.get("precision", "fp32"),
            CONVERTED_OUTPUT_GATE_DEFAULTS,
        )
        misses = check_gates(metrics, gates)
        diagnosis = ((ctx.upstream.get("model") or {}).get("conversion") or {}).get("int8_diagnosis")
        if misses and diagnosis:
            misses.append(explain(diagnosis, "tflite"))
        if misses:
            error = StepFailed(
                "TFLite verification gate missed: "
                + "; ".join(misses)
                + " (set the gate on the target in targets.toml to change it)"
            )
            error.metadata = {"metrics": metrics}
            raise error
        return {"io": io_desc, "metrics": metrics}


def _dims(shape) -> list[int]:
    return [d if isinstance(d, int) and d > 0 else -1 for d in shape]


def _normalise(np, x, norm):
    mean, std = (np.asarray(norm[k], np.float32) for k in ("mean", "std"))
    if mean.ndim == 1 and x.ndim >= 3:  # per-channel values apply to axis 1 (channels first)
        shape = [1, -1] + [1] * (x.ndim - 2)
        mean, std = (
            mean.reshape(shape) if mean.size > 1 else mean,
            std.reshape(shape) if std.size > 1 else std,
        )
    return ((x - mean) / std).astype(np.float32)


def _to_artifact(np, x, entry):
    x = x.transpose(entry["transpose"])
    q = entry.get("quantization")
    if q and entry["dtype"] in ("int8", "uint8"):
        info = np.iinfo(entry["dtype"])
        x = np.clip(np.round(x / q["scale"] + q["zero_point"]), info.min, info.max)
    return np.ascontiguousarray(x.astype(entry["dtype"]))


def _from_artifact(np, y, entry):
    q = entry.get("quantization")
    y = y.astype(np.float32)
    if q:
        y = (y - q["zero_point"]) * q["scale"]
    return y.transpose(layout.inverse(entry["transpose"]))


def _write_selftest(np, path, src_in, src_out, feed, outputs, io_desc) -> None:
    """The first sample's inputs and the artifact's outputs on it, with a tolerance."""
    arrays = {f"input.{name}": np.asarray(feed[name], np.float32) for name, _ in src_in}
    tol = 1e-4
    for k, (name, _) in enumerate(src_out):
        arrays[f"expected.{name}"] = outputs[k].astype(np.float32)
        entry = io_desc["outputs"][k]
        if entry.get("quantization"):
            tol = max(tol, 3 * entry["quantization"]["scale"])  # a device may round a step or two apart
        elif entry["dtype"] == "float16":
            tol = max(tol, 1e-2 * float(np.abs(outputs[k]).max()))
    arrays.update(
        atol=np.array(tol, np.float32), rtol=np.array(1e-2, np.float32), min_cosine=np.array(0.99, np.float32)
    )
    save_npz(path, arrays)
