"""One int8 model from onnxruntime.quantization: the options that describe it, the source prepared
for it (per-channel QDQ needs opset 13), calibration data, and the call itself."""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from edgebuild.steps.base import StepFailed

# op types handed to the quantizer; the rest stay float
QUANTIZABLE_OP_TYPES = (
    "Conv",
    "ConvTranspose",
    "MatMul",
    "Gemm",
    "Add",
    "Mul",
    "Relu",
    "Clip",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "Flatten",
    "Reshape",
    "Concat",
    "Transpose",
    "Sigmoid",
    "Resize",
    "Split",
    "Squeeze",
    "Unsqueeze",
    "Softmax",
)
PER_CHANNEL_MIN_OPSET = 13  # DequantizeLinear's `axis` attribute (per-channel scales) arrived in opset 13


@dataclass(frozen=True)
class Int8Options:
    mode: str = "static"  # static: QDQ with calibrated activations | dynamic: weights only
    activation_type: str = "uint8"
    weight_type: str = "int8"
    per_channel: bool = True
    calibrate_method: str = "minmax"
    exclude_op_types: tuple[str, ...] = ()
    exclude_nodes: tuple[str, ...] = ()
    reduce_range: bool = False
    symmetric_activations: bool = False
    float_depthwise: bool = (
        False  # keep depthwise Conv nodes float (onnxruntime's x86 QLinearConv is slow on them)
    )

    def label(self) -> str:
        if self.mode == "dynamic":
            text = "dynamic, " + ("per-channel" if self.per_channel else "per-tensor")
        else:
            text = (
                f"{self.activation_type} activations, {'per-channel' if self.per_channel else 'per-tensor'}, "
                f"{self.calibrate_method}"
            )
        if self.exclude_op_types:
            text += ", float " + "/".join(self.exclude_op_types)
        if self.float_depthwise:
            text += ", float depthwise Conv"
        if self.exclude_nodes:
            text += f", {len(self.exclude_nodes)} node(s) in float"
        return text

    def as_dict(self) -> dict:
        data = asdict(self)
        data["exclude_op_types"], data["exclude_nodes"] = (
            list(self.exclude_op_types),
            list(self.exclude_nodes),
        )
        return data

    def but(self, **changes) -> "Int8Options":
        return replace(self, **changes)


def default_opset(model) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def prepare(src: Path, work: Path, want_per_channel: bool, log) -> tuple[Path, dict]:
    """The source made ready for quantization: opset raised to 13 when per-channel QDQ needs it
    (onnx's version converter, then loaded in onnxruntime to prove it), and onnxruntime's
    pre-processing (shape inference, folding). Returns the prepared file and what was done:
    {"opset": ..., "per_channel_possible": bool, "note": str}."""
    import onnx

    from edgebuild.steps.ort.runtime import session

    work.mkdir(parents=True, exist_ok=True)
    model = onnx.load(str(src))
    opset = default_opset(model)
    notes = {"source_opset": opset, "opset": opset, "per_channel_possible": True}
    current = src
    if opset < PER_CHANNEL_MIN_OPSET and want_per_channel:
        raised = work / "opset13.onnx"
        try:
            from onnx import version_converter

            converted = version_converter.convert_version(model, PER_CHANNEL_MIN_OPSET)
            onnx.save(converted, str(raised))
            session(raised, what=f"the model converted to opset {PER_CHANNEL_MIN_OPSET}")
            current = raised
            notes.update(
                opset=PER_CHANNEL_MIN_OPSET,
                note=f"opset raised from {opset} to {PER_CHANNEL_MIN_OPSET} (onnx version converter) "
                f"for per-channel QDQ",
            )
        except Exception as exc:  # the converter lacks an adapter, or its result does not load
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            notes.update(
                per_channel_possible=False,
                note=f"opset {opset} kept (raising it to {PER_CHANNEL_MIN_OPSET} failed: {reason[:200]}); "
                f"per-tensor quantization instead of per-channel",
            )
        log.info("%s", notes["note"])
    prepared = work / "prepared.onnx"
    try:
        from onnxruntime.quantization.shape_inference import quant_pre_process

        quant_pre_process(str(current), str(prepared), skip_symbolic_shape=True)
    except Exception as exc:  # pre-processing only helps; quantize the model as it is
        log.warning("quant_pre_process failed (%s); quantizing without it", exc)
        shutil.copyfile(current, prepared)
    name_nodes(prepared)
    return prepared, notes


def name_nodes(path: Path) -> None:
    """Give unnamed (or same-named) nodes unique names, op type and index: nodes_to_exclude
    selects nodes by name, and the accuracy fallback has to name the nodes it keeps in float."""
    import onnx

    model = onnx.load(str(path))
    seen: set[str] = set()
    renamed = False
    for i, node in enumerate(model.graph.node):
        if not node.name or node.name in seen:
            node.name = f"{node.op_type}_{i}"
            while node.name in seen:
                node.name += "_"
            renamed = True
        seen.add(node.name)
    if renamed:
        onnx.save(model, str(path))


class CalibrationReader:
    """Feeds calibration samples to onnxruntime's calibrator one sample (evaldata.sample_rows) at a time."""

    def __init__(self, arrays: dict, names: list[str], rows: dict[str, int], limit: int) -> None:
        from edgebuild.evaldata import batches

        self._feeds = list(batches(arrays, names, rows, limit))
        self._iter = iter(self._feeds)

    def get_next(self):
        return next(self._iter, None)

    def rewind(self):  # part of the CalibrationDataReader protocol in newer onnxruntime
        self._iter = iter(self._feeds)


def depthwise_convs(model_path: Path) -> list[str]:
    """Names of the Conv nodes with more than one group (depthwise and grouped convolutions)."""
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    return [
        n.name
        for n in model.graph.node
        if n.op_type == "Conv" and n.name and any(a.name == "group" and a.i > 1 for a in n.attribute)
    ]


HISTOGRAM_BUDGET_BYTES = 2 * 1024**3


def histogram_samples(model_path: Path) -> int:
    """How many calibration samples a histogram calibration (percentile, entropy) may hold in about
    2 GiB: it keeps every float activation of every sample. Activation sizes come from shape
    inference on the prepared model (unknown dims count as 1, so this errs on the generous side)."""
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    per_sample = 0
    for value in list(model.graph.value_info) + list(model.graph.output):
        tensor = value.type.tensor_type
        if tensor.elem_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16):
            count = 1
            for dim in tensor.shape.dim:
                count *= dim.dim_value if dim.dim_value > 0 else 1
            per_sample += 4 * count
    return max(1, min(128, HISTOGRAM_BUDGET_BYTES // max(per_sample, 1)))


def quantize(prepared: Path, out: Path, options: Int8Options, reader_factory, cache_dir: Path) -> None:
    """Write the int8 model for `options` to `out`. Calibrated ranges are cached per calibration
    method in cache_dir, so candidates that differ in other options calibrate once."""
    from onnxruntime import quantization as q

    # uint16 activations only for the diagnosis probe (diagnosis.py): never shipped
    types = {"int8": q.QuantType.QInt8, "uint8": q.QuantType.QUInt8, "uint16": q.QuantType.QUInt16}
    excluded = list(options.exclude_nodes) + (depthwise_convs(prepared) if options.float_depthwise else [])
    common = dict(
        per_channel=options.per_channel,
        reduce_range=options.reduce_range,
        weight_type=types[options.weight_type],
        nodes_to_exclude=excluded,
    )
    op_types = [t for t in QUANTIZABLE_OP_TYPES if t not in set(options.exclude_op_types)]
    try:
        if options.mode == "dynamic":
            q.quantize_dynamic(str(prepared), str(out), **common)
            return
        methods = {
            "minmax": q.CalibrationMethod.MinMax,
            "entropy": q.CalibrationMethod.Entropy,
            "percentile": q.CalibrationMethod.Percentile,
        }
        cache = cache_dir / f"ranges-{options.calibrate_method}.json"
        # histogram calibrators keep every activation of every sample until the end: cap the samples
        cap = None if options.calibrate_method == "minmax" else histogram_samples(prepared)
        q.quantize_static(
            str(prepared),
            str(out),
            None if cache.is_file() else reader_factory(cap),
            quant_format=q.QuantFormat.QDQ,
            activation_type=types[options.activation_type],
            calibrate_method=methods[options.calibrate_method],
            op_types_to_quantize=op_types,
            calibration_cache_path=str(cache),
            extra_options={
                "ActivationSymmetric": options.symmetric_activations,
                "WeightSymmetric": True,
                "UseQDQContribOps": options.activation_type == "uint16",  # 16-bit Q/DQ are contrib ops
            },
            **common,
        )
    except StepFailed:
        raise
    except Exception as exc:
        raise StepFailed(
            f"int8 quantization ({options.label()}) failed: {type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}"
        ) from None
