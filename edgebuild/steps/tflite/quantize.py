"""Quantization of a float32 .tflite file with ai-edge-quantizer (Google's LiteRT quantizer).

- int8 (full integer): weights int8 per channel (or per tensor), activations int8 calibrated on
  the model's calibration data, int8 input and output: every tensor integer (what the Edge TPU
  needs). Recipe `static_wi8_ai8`, except BATCH_MATMUL weights per tensor (LiteRT's int8
  BATCH_MATMUL gives wrong results with per-channel weights); activation ranges are each tensor's
  min/max over all calibration samples (_calibrate). Ops it cannot quantize stay float between
  DEQUANTIZE/QUANTIZE (the `tflite` target); accuracy_fallback.py may keep more float.
- int8-dynamic: int8 weights, float activations and I/O, no calibration (`dynamic_wi8_afp32`).
- fp16: float16 weights dequantized to float32 at load (`float_casting`): half the size, float32
  compute and I/O. (onnx2tf's own float16 file keeps float16 activations, which LiteRT's CPU
  kernels refuse, e.g. MAX_POOL_2D: "Type FLOAT16 not currently supported".)

Measured choice: onnx2tf 2.6.9's own integer quantization failed its own validation on a real
model (LOGISTIC output scale), ai-edge-quantizer converted it with 0 float tensors (facts file).
Runs in the `litert` toolchain environment.
"""

from __future__ import annotations

import contextlib
import copy
import io
import re
from pathlib import Path
from typing import Any

FP16_RECIPE = [
    {
        "regex": ".*",
        "operation": "*",
        "algorithm_key": "float_casting",
        "op_config": {
            "weight_tensor_config": {"num_bits": 16, "dtype": "FLOAT", "granularity": "TENSORWISE"},
            "compute_precision": "FLOAT",
            "explicit_dequantize": True,
        },
    }
]
RECIPE_NAMES = {
    "int8": "static_wi8_ai8",
    "int8-a16": "static_wi8_ai16",  # 16-bit activations: the diagnosis probe only, never shipped
    "int8-dynamic": "dynamic_wi8_afp32",
    "fp16": "float_casting fp16 weights",
}


def _recipe(kind: str, quant_type: str, keep_float: tuple[str, ...] = ()) -> list[dict]:
    from ai_edge_quantizer import recipe

    if kind == "fp16":
        return [dict(row) for row in FP16_RECIPE]
    rows = {
        "int8": recipe.static_wi8_ai8,
        "int8-a16": recipe.static_wi8_ai16,
        "int8-dynamic": recipe.dynamic_wi8_afp32,
    }[kind]()
    if quant_type == "per-tensor":
        for row in rows:
            weights = row.get("op_config", {}).get("weight_tensor_config")
            if weights:
                weights["granularity"] = "TENSORWISE"
    if kind in ("int8", "int8-a16"):
        # LiteRT's int8 BATCH_MATMUL computes with one weight scale: per-channel constant weights
        # give wrong results (measured: an FSMN VAD at cosine 0.13, per-tensor 0.976)
        per_tensor = copy.deepcopy(rows[0])
        per_tensor["operation"] = "BATCH_MATMUL"
        per_tensor["op_config"]["weight_tensor_config"]["granularity"] = "TENSORWISE"
        rows.append(per_tensor)
    # ops kept float (the last matching row wins): scopes are an op's output tensor names + ";"
    rows += [
        {"regex": "^" + re.escape(name) + ";", "operation": "*", "algorithm_key": "no_quantize"}
        for name in keep_float
    ]
    return rows


class QuantizerOpFailed(Exception):
    """ai-edge-quantizer raised while computing one op's parameters; `op_index` (in the float
    model's main subgraph) and `op_name` come from its traceback when it names them."""

    def __init__(self, message: str, op_index: int | None, op_name: str | None):
        super().__init__(message)
        self.op_index, self.op_name = op_index, op_name


def _failing_op(tb) -> tuple[int | None, str | None]:
    """The op ai-edge-quantizer was materializing when it raised: its `op_info` local (OpInfo with
    subgraph_op_index and op_name) in the innermost frame that has one."""
    found = (None, None)
    while tb is not None:
        info = tb.tb_frame.f_locals.get("op_info")
        if info is not None and hasattr(info, "subgraph_op_index"):
            name = getattr(info, "op_name", None)
            found = (info.subgraph_op_index, str(getattr(name, "value", name) or "") or None)
        tb = tb.tb_next
    return found


def quantize(
    fp32: Path,
    dst: Path,
    kind: str,
    quant_type: str = "per-channel",
    samples: list[dict[str, Any]] | None = None,
    keep_float: tuple[str, ...] = (),
    cache: dict | None = None,
) -> str:
    """Write the quantized model to `dst`; `samples` (int8 only) are dicts of signature input name
    -> array already laid out and normalised as the float model expects. `keep_float` names ops
    (by their first output tensor) to leave float. `cache` keeps the calibration result between
    calls on the same float file (it does not depend on which ops stay float). Returns the recipe
    name; raises QuantizerOpFailed when the quantizer fails on one op it names."""
    from ai_edge_quantizer import quantizer

    q = quantizer.Quantizer(str(fp32))
    q.load_quantization_recipe(_recipe(kind, quant_type, tuple(keep_float)))
    cache = {} if cache is None else cache
    log = io.StringIO()
    with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        calibration = None
        if q.need_calibration:
            if not samples:
                raise ValueError("full-integer quantization needs calibration samples")
            if "calibration" not in cache:
                cache["calibration"] = _calibrate(fp32, _recipe(kind, quant_type, tuple(keep_float)), samples)
            calibration = cache["calibration"]
        try:
            result = q.quantize(calibration)
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            op_index, op_name = _failing_op(exc.__traceback__)
            if op_index is None:
                raise
            raise QuantizerOpFailed(
                str(exc).splitlines()[0] if str(exc) else type(exc).__name__, op_index, op_name
            ) from exc
        result.export_model(str(dst), overwrite=True)
    return RECIPE_NAMES[kind]


def _calibrate(fp32: Path, rows: list[dict], samples: list[dict[str, Any]]) -> dict:
    """Each tensor's min and max over ALL calibration samples. ai-edge-quantizer's own calibrate()
    keeps a moving average (0.95 old + 0.05 new) of per-sample ranges, so with the few samples a
    build has the first sample sets the range and later, wider samples are clipped (measured:
    a document orientation classifier at cosine 0.904 instead of 0.950, an FSMN VAD 0.976 instead
    of 0.982); its Calibrator takes the plain min/max update instead."""
    from ai_edge_litert.interpreter import Interpreter
    from ai_edge_quantizer import calibrator, recipe_manager
    from ai_edge_quantizer.utils import qsv_utils

    manager = recipe_manager.RecipeManager()
    manager.load_quantization_recipe(rows)
    signature = next(iter(Interpreter(str(fp32)).get_signature_list()))
    calib = calibrator.Calibrator(fp32.read_bytes(), num_threads=1, qsv_update_func=qsv_utils.min_max_update)
    calib.calibrate({signature: samples}, manager)
    return calib.get_model_qsvs()


def signature_inputs(fp32: Path) -> list[str]:
    """The float model's signature input names in order (calibration samples are keyed by them)."""
    from ai_edge_litert.interpreter import Interpreter

    sigs = Interpreter(str(fp32)).get_signature_list()
    return list(next(iter(sigs.values()))["inputs"]) if sigs else []
