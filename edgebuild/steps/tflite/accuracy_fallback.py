"""int8 with float islands where full int8 misses: the `tflite` int8 target's accuracy fallback.

Full integer quantization fails on some real models in ways no single setting fixes (measured on
the corpus): a layer norm's int8 DIV gets a divisor equal to its zero point, which LiteRT refuses
at run time; ai-edge-quantizer raises on one op (a MAXIMUM whose constant operand it cannot
requantize); a log-spectrogram front end or a long chain of detector heads loses too much in int8.
A CPU target can keep those ops float (LiteRT runs DEQUANTIZE -> float op -> QUANTIZE), so:

1. quantize everything; if ai-edge-quantizer fails on an op it names, keep that op float and retry;
2. run the int8 file against the float file on the calibration samples; if LiteRT refuses an op
   at run time ("Node number N (DIV) failed to invoke"), keep that op float and retry;
3. if the worst output's mean cosine is below `min_cosine`, compare every tensor of the two files
   (ai-edge-quantizer's model validator) and keep float the ops that lose the most agreement
   between their inputs and their output (1, 2, 4, ... per round), until the outputs agree, the
   rounds, the time budget or half of the ops (`max_float_share`) run out. The first file that reaches `min_cosine` is kept; when
   none does, the file of step 2 (only the ops that had to stay float): more float ops that do not
   reach the mark only make the file bigger (measured on CNNs whose loss is spread over every
   layer: 60-130 float ops, still short).

The result says how many ops stayed float and why; it is never called full int8 then. The Edge TPU
target (integer_only) never uses this: it needs every tensor integer.
Runs in the `litert` toolchain environment.
"""

from __future__ import annotations

import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .quantize import QuantizerOpFailed, quantize

_INVOKE_FAILED = re.compile(r"Node number (\d+) \((\w+)\) failed")


@dataclass
class FallbackResult:
    recipe: str
    cosine: float | None  # worst output, on the calibration samples
    kept_float: list[dict[str, str]] = field(default_factory=list)  # {"op", "tensor", "why"}
    rounds: int = 0
    history: list[tuple[int, float]] = field(default_factory=list)  # (ops kept float, cosine) per round
    reached: bool = True  # False: min_cosine not reached; only the ops that must stay float are


class InvokeFailed(Exception):
    def __init__(self, node: int, op: str, message: str):
        super().__init__(message)
        self.node, self.op = node, op


def run_outputs(path: Path, samples: list[dict]) -> list[dict[str, Any]]:
    """Outputs (dequantized to float32) for each sample, by signature output name."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(str(path), num_threads=1)
    runner = interp.get_signature_runner(next(iter(interp.get_signature_list())))
    ins, outs = runner.get_input_details(), runner.get_output_details()
    results = []
    for sample in samples:
        feed = {}
        for key, value in sample.items():
            d = ins[key]
            if np.dtype(d["dtype"]).kind in "iu" and np.asarray(value).dtype.kind == "f":
                scale, zero = d["quantization"]
                info = np.iinfo(d["dtype"])
                value = np.clip(np.round(value / scale + zero), info.min, info.max)
            feed[key] = np.asarray(value).astype(d["dtype"])
        try:
            got = runner(**feed)
        except RuntimeError as exc:
            m = _INVOKE_FAILED.search(str(exc))
            if m:
                raise InvokeFailed(int(m.group(1)), m.group(2), str(exc).splitlines()[0]) from None
            raise
        row = {}
        for key, value in got.items():
            scale, zero = outs[key]["quantization"]
            value = value.astype(np.float32)
            row[key] = (value - zero) * scale if scale else value
        results.append(row)
    return results


def output_cosine(reference: list[dict], quantized: Path, samples: list[dict]) -> float:
    """The worst output's mean cosine between the float outputs and the quantized file's, by the
    rule verification uses (edgebuild.metrics: quiet samples are left to the error figures)."""
    from ...metrics import compare_outputs

    got = run_outputs(quantized, samples)
    names = list(reference[0])
    figures = compare_outputs(
        [([r[k] for k in names], [g[k] for k in names], 1) for r, g in zip(reference, got)], names
    )
    return min(f["cosine_mean"] for f in figures.values())


def _damage(fp32: Path, quantized: Path, samples: list[dict]) -> list[tuple[float, str, str, list[str]]]:
    """(agreement lost, op, first output tensor, its producers' first output tensors) for each op
    of the float file, worst first: the least cosine of its non-constant inputs minus its
    output's, over every tensor both files have. The producers matter because an op's loss often
    comes from the int8 precision of its input (a LOG of a small power, a SOFTMAX over many
    logits): keeping only the op float does not help then."""
    from ai_edge_litert.interpreter import Interpreter
    from ai_edge_quantizer import model_validator
    from ai_edge_quantizer.utils import validation_utils

    from .schema import read_model

    signature = next(iter(Interpreter(str(fp32)).get_signature_list()))
    cos = validation_utils.ValidationErrorMetric.COSINE_SIMILARITY
    result = model_validator.compare_model(
        fp32.read_bytes(), quantized.read_bytes(), {signature: samples}, [cos], num_threads=1
    )
    per_tensor = {name: values[cos.value] for name, values in result.get_all_tensor_results().items()}
    sg = read_model(fp32).main
    producer = {i: sg.tensors[op.outputs[0]].name for op in sg.operators if op.outputs for i in op.outputs}
    rows = []
    for op in sg.operators:
        outs = [sg.tensors[i].name for i in op.outputs if i >= 0]
        if not outs or outs[0] not in per_tensor:
            continue
        live = [i for i in op.inputs if i >= 0 and not sg.tensors[i].constant]
        ins = [per_tensor.get(sg.tensors[i].name, 1.0) for i in live]
        rows.append(
            (
                min(ins, default=1.0) - per_tensor[outs[0]],
                op.op,
                outs[0],
                [producer[i] for i in live if i in producer],
            )
        )
    return sorted(rows, key=lambda row: row[0], reverse=True)


def _producers(path: Path) -> dict[str, list[str]]:
    """Op (by first output tensor) -> the ops producing its non-constant inputs."""
    from .schema import read_model

    sg = read_model(path).main
    made_by = {i: sg.tensors[op.outputs[0]].name for op in sg.operators if op.outputs for i in op.outputs}
    return {
        sg.tensors[op.outputs[0]].name: [made_by[i] for i in op.inputs if i in made_by]
        for op in sg.operators
        if op.outputs
    }


def _op_of(path: Path, tensor: str) -> str:
    from .schema import read_model

    sg = read_model(path).main
    return next(
        (op.op for op in sg.operators if op.outputs and sg.tensors[op.outputs[0]].name == tensor), "?"
    )


def _frontier(tensor: str, producers: dict[str, list[str]], kept: set[str]) -> list[str]:
    """`tensor`'s op if it is not kept float yet, else the nearest not-kept ops upstream of it."""
    found, seen, todo = [], set(), [tensor]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        if name not in kept:
            found.append(name)
        else:
            todo.extend(producers.get(name, []))
    return found


def _op_output(path: Path, index: int) -> tuple[str, str] | None:
    """(op, first output tensor name) of operator `index` in the main subgraph of `path`."""
    from .schema import read_model

    sg = read_model(path).main
    if not 0 <= index < len(sg.operators) or not sg.operators[index].outputs:
        return None
    op = sg.operators[index]
    return op.op, sg.tensors[op.outputs[0]].name


def quantize_within(
    fp32: Path,
    dst: Path,
    quant_type: str,
    samples: list[dict],
    min_cosine: float,
    scratch: Path,
    max_rounds: int = 8,
    budget_s: float = 120.0,
    check_samples: int = 8,
    max_float_share: float = 0.5,
) -> FallbackResult:
    """int8 with as few float ops as this search finds for outputs at `min_cosine` (see module
    doc). Writes the best file found to `dst`. Raises when not even one quantized file is made."""
    started = time.perf_counter()
    check = samples[:check_samples]
    reference = run_outputs(fp32, check)
    cache: dict = {}
    kept: list[dict[str, str]] = []
    best: tuple[float, Path, list] | None = None
    recipe, widen, rounds, history, first = "", 1, 0, [], None
    cap = int(max_float_share * len(_producers(fp32)))  # beyond that it is a float model with int8 I/O
    scratch.mkdir(parents=True, exist_ok=True)
    while rounds < max_rounds:
        rounds += 1
        out = scratch / f"round{rounds}.tflite"
        names = tuple(k["tensor"] for k in kept)
        try:
            recipe = quantize(fp32, out, "int8", quant_type, samples, keep_float=names, cache=cache)
        except QuantizerOpFailed as exc:
            found = _op_output(fp32, exc.op_index)
            if found is None or found[1] in names:
                raise
            kept.append({"op": found[0], "tensor": found[1], "why": f"ai-edge-quantizer: {str(exc)[:160]}"})
            continue
        try:
            cosine = output_cosine(reference, out, check)
        except InvokeFailed as exc:
            found = _op_output(out, exc.node)
            if found is None or found[1] in names:
                raise RuntimeError(f"LiteRT cannot run the int8 model: {exc}") from None
            kept.append(
                {"op": found[0], "tensor": found[1], "why": f"LiteRT refuses its int8 form: {exc}"[:200]}
            )
            continue
        history.append((len(kept), round(cosine, 5)))
        if first is None:  # only the ops that had to stay float
            first = (cosine, out, list(kept))
        if best is None or cosine > best[0]:
            best = (cosine, out, list(kept))
        if cosine >= min_cosine or time.perf_counter() - started > budget_s:
            break
        rows = [row for row in _damage(fp32, out, check[:4]) if row[0] > 1e-4]
        ops = {row[2]: row[1] for row in rows}
        producers = {row[2]: row[3] for row in rows} | _producers(fp32)
        added = 0
        for lost, op, tensor, _ in rows:
            if added >= widen or len(kept) >= cap:
                break
            # the op itself, or where it is already float, the nearest int8 ops feeding it
            for name in _frontier(tensor, producers, {k["tensor"] for k in kept}):
                kept.append(
                    {
                        "op": ops.get(name) or _op_of(fp32, name),
                        "tensor": name,
                        "why": f"int8 loses {lost:.3f} cosine at this {op}"
                        + ("" if name == tensor else " (feeds it)"),
                    }
                )
                added += 1
        if not added:
            break
        widen *= 2
    if best is None:
        raise RuntimeError(
            f"no int8 model could be made after {rounds} rounds (ops kept float: "
            f"{', '.join(k['op'] for k in kept) or 'none'})"
        )
    reached = best[0] >= min_cosine
    if not reached:  # more float ops without reaching the mark only make the file bigger
        best = first
    shutil.copyfile(best[1], dst)
    return FallbackResult(
        recipe=recipe,
        cosine=round(best[0], 5),
        kept_float=best[2],
        rounds=rounds,
        history=history,
        reached=reached,
    )
