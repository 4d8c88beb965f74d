"""Quantization of a float32 .tflite file with ai-edge-quantizer (Google's LiteRT quantizer).

- int8 (full integer): weights int8 per channel (or per tensor), activations int8 calibrated on
  the model's calibration data, int8 input and output: every tensor integer (what the Edge TPU
  needs). Recipe `static_wi8_ai8`.
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
import io
from pathlib import Path
from typing import Any

FP16_RECIPE = [{"regex": ".*", "operation": "*", "algorithm_key": "float_casting",
                "op_config": {"weight_tensor_config": {"num_bits": 16, "dtype": "FLOAT", "granularity": "TENSORWISE"},
                              "compute_precision": "FLOAT", "explicit_dequantize": True}}]
RECIPE_NAMES = {"int8": "static_wi8_ai8", "int8-dynamic": "dynamic_wi8_afp32", "fp16": "float_casting fp16 weights"}


def _recipe(kind: str, quant_type: str) -> list[dict]:
    from ai_edge_quantizer import recipe
    if kind == "fp16":
        return [dict(row) for row in FP16_RECIPE]
    rows = recipe.static_wi8_ai8() if kind == "int8" else recipe.dynamic_wi8_afp32()
    if quant_type == "per-tensor":
        for row in rows:
            weights = row.get("op_config", {}).get("weight_tensor_config")
            if weights:
                weights["granularity"] = "TENSORWISE"
    return rows


def quantize(fp32: Path, dst: Path, kind: str, quant_type: str = "per-channel",
             samples: list[dict[str, Any]] | None = None) -> str:
    """Write the quantized model to `dst`; `samples` (int8 only) are dicts of signature input name
    -> array already laid out and normalised as the float model expects. Returns the recipe name."""
    from ai_edge_quantizer import quantizer

    q = quantizer.Quantizer(str(fp32))
    q.load_quantization_recipe(_recipe(kind, quant_type))
    log = io.StringIO()
    with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        calibration = None
        if q.need_calibration:
            if not samples:
                raise ValueError("full-integer quantization needs calibration samples")
            from ai_edge_litert.interpreter import Interpreter
            signature = next(iter(Interpreter(str(fp32)).get_signature_list()))
            calibration = q.calibrate({signature: samples})
        result = q.quantize(calibration)
        result.export_model(str(dst), overwrite=True)
    return RECIPE_NAMES[kind]


def signature_inputs(fp32: Path) -> list[str]:
    """The float model's signature input names in order (calibration samples are keyed by them)."""
    from ai_edge_litert.interpreter import Interpreter
    sigs = Interpreter(str(fp32)).get_signature_list()
    return list(next(iter(sigs.values()))["inputs"]) if sigs else []
