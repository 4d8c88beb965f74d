"""ONNX Runtime artifacts: offline-optimized fp32, fp16, int8 (dynamic, or static QDQ calibrated on
the model's data), and their verification against the fp32 source on the evaluation set."""
from __future__ import annotations

import os
import resource
from pathlib import Path

from edgebuild.steps.base import Step, StepContext, StepFailed

LEVELS = {"basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED", "all": "ORT_ENABLE_ALL"}


def _session(path: Path, threads: int = 1, level: str | None = None, save_to: Path | None = None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    if level is not None:
        options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, LEVELS[level])
    if save_to is not None:
        options.optimized_model_filepath = str(save_to)
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise StepFailed(f"onnxruntime cannot load the model: {str(exc).splitlines()[0]}") from None


def optimize_offline(src: Path, dst: Path, level: str) -> tuple[int, int]:
    import onnx

    before = len(onnx.load(str(src), load_external_data=False).graph.node)
    _session(src, level=level, save_to=dst)
    return before, len(onnx.load(str(dst), load_external_data=False).graph.node)


def smoke_run(path: Path) -> None:
    """Load the artifact and run it once on zeros, so a broken artifact fails its own step."""
    import numpy as np

    session = _session(path)
    feed = {}
    for value in session.get_inputs():
        shape = [d if isinstance(d, int) else 1 for d in value.shape]
        dtype = np.float16 if "float16" in value.type else np.float32 if "float" in value.type else np.int64
        feed[value.name] = np.zeros(shape, dtype=dtype)
    try:
        session.run(None, feed)
    except Exception as exc:
        raise StepFailed(f"the built artifact fails to run in onnxruntime: {str(exc).splitlines()[0]}") from None


def _describe(path: Path) -> dict:
    from edgebuild.onnxinfo import describe_io
    return {"io": describe_io(path), "size_bytes": os.path.getsize(path)}


class OrtOptimize(Step):
    """An offline-optimized fp32 model for onnxruntime. params: opt_level (basic|extended|all);
    `extended` and `all` may fuse into onnxruntime-specific ops, which is fine for this runtime."""

    name = "ort.optimize"
    version = "1"
    uses = ("onnx", "onnxruntime")
    inputs = ("model",)
    outputs = ("model.onnx",)

    def run(self, ctx: StepContext) -> dict:
        level = ctx.params.get("opt_level", "extended")
        if level not in LEVELS:
            raise StepFailed(f"opt_level '{level}' is not one of {', '.join(LEVELS)}")
        out = ctx.output("model.onnx")
        optimize_offline(ctx.input("model"), out, level)
        smoke_run(out)
        return _describe(out)


class OrtFloat16(Step):
    """fp16 weights and activations; inputs and outputs stay float32 so callers need not change."""

    name = "ort.fp16"
    version = "1"
    uses = ("onnx", "onnxruntime")
    inputs = ("model",)
    outputs = ("model.onnx",)

    def run(self, ctx: StepContext) -> dict:
        import onnx
        from onnxruntime.transformers.float16 import convert_float_to_float16

        model = onnx.load(str(ctx.input("model")))
        half = convert_float_to_float16(model, keep_io_types=bool(ctx.params.get("keep_io_types", True)),
                                        op_block_list=list(ctx.params.get("op_block_list", [])) or None)
        out = ctx.output("model.onnx")
        onnx.save(half, str(out))
        smoke_run(out)
        return _describe(out)


class OrtQuantize(Step):
    """int8 with onnxruntime.quantization.

    params: mode (static|dynamic); per_channel; activation_type/weight_type (int8|uint8);
    calibrate_method (minmax|entropy|percentile); calibration_samples; exclude_nodes; exclude_op_types;
    reduce_range; symmetric_activations. Static mode writes QDQ and needs calibration data.
    """

    name = "ort.quantize"
    version = "1"
    uses = ("onnx", "onnxruntime", "numpy")
    inputs = ("model", "calibration?")
    outputs = ("model.onnx",)

    def required_inputs(self, params: dict) -> set[str]:
        return {"model", "calibration"} if params.get("mode", "static") == "static" else {"model"}

    def run(self, ctx: StepContext) -> dict:
        from onnxruntime import quantization as q
        from onnxruntime.quantization.shape_inference import quant_pre_process

        p = ctx.params
        src = ctx.input("model")
        prepared = ctx.out / "prepared.onnx"
        try:
            quant_pre_process(str(src), str(prepared), skip_symbolic_shape=True)
        except Exception as exc:   # pre-processing only helps; quantize the model as it is
            ctx.log.warning("quant_pre_process failed (%s); quantizing without it", exc)
            prepared = src
        out = ctx.output("model.onnx")
        types = {"int8": q.QuantType.QInt8, "uint8": q.QuantType.QUInt8}
        common = dict(per_channel=bool(p.get("per_channel", True)), reduce_range=bool(p.get("reduce_range", False)),
                      weight_type=types[p.get("weight_type", "int8")],
                      nodes_to_exclude=list(p.get("exclude_nodes", [])))
        op_types = [t for t in ("Conv", "MatMul", "Gemm", "Add", "Mul", "Relu", "MaxPool", "AveragePool",
                                "GlobalAveragePool", "Flatten", "Reshape", "Concat", "Transpose", "Sigmoid")
                    if t not in set(p.get("exclude_op_types", []))]
        mode = p.get("mode", "static")
        try:
            if mode == "dynamic":
                q.quantize_dynamic(str(prepared), str(out), **common)
            else:
                if "calibration" not in ctx.inputs:
                    raise StepFailed("static int8 quantization needs calibration data: set `calibration` on the model")
                reader = _CalibrationReader(ctx.input("calibration"), prepared, int(p.get("calibration_samples", 128)))
                methods = {"minmax": q.CalibrationMethod.MinMax, "entropy": q.CalibrationMethod.Entropy,
                           "percentile": q.CalibrationMethod.Percentile}
                q.quantize_static(str(prepared), str(out), reader, quant_format=q.QuantFormat.QDQ,
                                  activation_type=types[p.get("activation_type", "int8")],
                                  calibrate_method=methods[p.get("calibrate_method", "minmax")],
                                  op_types_to_quantize=op_types,
                                  extra_options={"ActivationSymmetric": bool(p.get("symmetric_activations", False)),
                                                 "WeightSymmetric": True}, **common)
        except StepFailed:
            raise
        except Exception as exc:
            raise StepFailed(f"int8 quantization failed: {type(exc).__name__}: {str(exc).splitlines()[0]}") from None
        finally:
            if prepared != src:
                prepared.unlink(missing_ok=True)
        smoke_run(out)
        result = _describe(out)
        result["quantization"] = {"mode": mode, "format": "QDQ" if mode == "static" else "QOperator",
                                  "per_channel": common["per_channel"]}
        return result


class _CalibrationReader:
    """Feeds calibration samples to onnxruntime's calibrator in the model's batch size."""

    def __init__(self, npz: Path, model: Path, limit: int) -> None:
        from edgebuild.evaldata import batches, load_npz
        from edgebuild.onnxinfo import describe_io, fixed_batch

        io = describe_io(model)
        names = [v["name"] for v in io["inputs"]]
        arrays = load_npz(npz, names, "calibration")
        self._feeds = iter(list(batches(arrays, names, fixed_batch(io) or 1, limit)))

    def get_next(self):
        return next(self._feeds, None)

    def rewind(self):   # part of the CalibrationDataReader protocol in newer onnxruntime
        pass


class OrtVerify(Step):
    """Run the fp32 source and the artifact on the evaluation set; record errors, agreement,
    accuracy against labels, per-class drop and latency; fail when a gate is missed; write the
    bundle's self-test (reference input and expected output).

    params: gates {max_accuracy_drop, max_class_drop, min_cosine, min_top1_agreement}; threads;
    eval_samples (stratified sample size); atol/rtol for the self-test.
    """

    name = "ort.verify"
    version = "2"
    uses = ("onnx", "onnxruntime", "numpy")
    inputs = ("reference", "model", "evaluation?")
    outputs = ("selftest.npz",)

    def run(self, ctx: StepContext) -> dict:
        import numpy as np

        from edgebuild.evaldata import batches, load_npz, stratified_sample
        from edgebuild.metrics import check_gates, compare, latency
        from edgebuild.npzfile import save_npz
        from edgebuild.onnxinfo import describe_io, fixed_batch

        p = ctx.params
        threads = int(p.get("threads", 1))
        reference, artifact = _session(ctx.input("reference"), threads), _session(ctx.input("model"), threads)
        io = describe_io(ctx.input("model"))
        names = [v["name"] for v in io["inputs"]]
        batch = fixed_batch(io)
        if "evaluation" in ctx.inputs:
            arrays = load_npz(ctx.input("evaluation"), names, "evaluation")
        else:   # no data: random inputs still measure agreement with the source
            rng = np.random.default_rng(0)
            arrays = {v["name"]: rng.standard_normal([64] + [d if isinstance(d, int) else 1 for d in v["shape"][1:]])
                      .astype(np.float32) for v in io["inputs"]}
        labels = arrays.get("labels")
        limit = int(p.get("eval_samples", 0)) or None
        if labels is not None and limit:
            keep = stratified_sample(labels, limit)
            arrays = {k: v[keep] for k, v in arrays.items()}
            labels = arrays["labels"]
        ref_out, art_out = [], []
        for feed in batches(arrays, names, batch):
            ref_out.append(reference.run(None, feed)[0])
            art_out.append(artifact.run(None, feed)[0])
        figures = compare(np.concatenate(ref_out), np.concatenate(art_out), labels)
        sample = next(batches(arrays, names, batch or 1))
        figures["latency"] = latency(lambda: artifact.run(None, sample), runs=int(p.get("latency_runs", 200)))
        figures["latency"].update(threads=threads, batch=int(len(sample[names[0]])))
        # peak resident memory of this verification process (source and artifact sessions and the
        # evaluation data together): an upper bound for the artifact alone
        figures["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        figures["size_bytes"] = os.path.getsize(ctx.input("model"))
        figures["size_ratio_to_source"] = figures["size_bytes"] / os.path.getsize(ctx.input("reference"))

        expected = artifact.run(None, sample)
        out_names = [o.name for o in artifact.get_outputs()]
        tolerance = float(p.get("selftest_atol", 1e-3))
        save_npz(ctx.output("selftest.npz"), {**{f"input.{k}": v for k, v in sample.items()},
                                              **{f"expected.{n}": v for n, v in zip(out_names, expected)},
                                              "atol": np.array(tolerance),
                                              "rtol": np.array(float(p.get("selftest_rtol", 1e-3)))})
        misses = check_gates(figures, p.get("gates", {}))
        if misses:
            error = StepFailed("accuracy gate missed: " + "; ".join(misses))
            error.metadata = {"metrics": figures}
            raise error
        return {"metrics": figures}


STEPS = {s.name: s for s in (OrtOptimize, OrtFloat16, OrtQuantize, OrtVerify)}
