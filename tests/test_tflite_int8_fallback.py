"""int8 pitfalls seen on real models, each on a small ONNX model that reproduces it, through the
real `tflite.convert` step (litert toolchain: onnx2tf 2.6.9 + ai-edge-quantizer 0.10.0) and the
real `tflite.verify` step (LiteRT against onnxruntime):

- BATCH_MATMUL with per-channel constant weights: LiteRT computes garbage (cosine 0.0 measured on
  this model, 0.13 on an FSMN VAD); weights of that op are quantized per tensor.
- a layer norm's int8 DIV whose divisor rounds to its zero point: LiteRT refuses to run the file
  (a BERT); the tflite target keeps that op, and the ops that lose the most, float and says so
  (at most half the ops; past that it keeps only the refused op).
- ai-edge-quantizer's moving-average calibration: ranges are min/max over every sample.
- Max with a lower-rank constant: ai-edge-quantizer fails on the whole model (Magika); the
  constant is given the output's rank in preparation, so even integer-only int8 works.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pytest

import onnx_factory
from edgebuild import toolchain
from edgebuild.steps.base import StepFailed
from step_runner import run_step

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def litert_env():
    return toolchain.ensure(tomllib.loads((ROOT / "recipes" / "tflite.toml").read_text())["toolchain"])


def _data(path: Path, shape: list[int], seed: int) -> Path:
    x = np.random.default_rng(seed).normal(0, 1, (8, *shape[1:])).astype(np.float32)
    np.savez(path, x=x)
    return path


def _convert(
    env, tmp: Path, model: Path, shape: list[int], calibration: Path | None = None, **params
) -> tuple[Path, dict]:
    calibration = calibration or _data(tmp / "calib.npz", shape, 1)
    meta = run_step(
        "tflite.convert",
        tmp / "convert",
        {"model": model, "calibration": calibration},
        dict(params, input_shapes={"x": shape}),
        python=env.python,
    )
    return tmp / "convert" / "model.tflite", meta


def _cosine_vs_onnxruntime(tflite: Path, model: Path, shape: list[int], tmp: Path, made: dict) -> float:
    evaluation = _data(tmp / "eval.npz", shape, 2)  # other samples than the calibration's
    meta = run_step(
        "tflite.verify",
        tmp / "verify",
        {"model": tflite, "reference": model, "evaluation": evaluation},
        {"input_shapes": {"x": shape}},
        upstream={"model": made},
    )
    return meta["metrics"]["cosine_mean"]


def test_batch_matmul_weights_are_per_tensor(litert_env, tmp_path):
    from edgebuild.steps.tflite.schema import read_model

    shape = [1, 8, 32]
    model = onnx_factory.matmul_3d(tmp_path / "mm.onnx")
    tflite, meta = _convert(litert_env, tmp_path, model, shape, precision="int8", int8_min_cosine=False)
    assert meta["quantization"]["full_integer"] is True and meta["quantization"]["float_ops"] == 0
    sg = read_model(tflite).main
    weights = [
        sg.tensors[i]
        for op in sg.operators
        if op.op == "BATCH_MATMUL"
        for i in op.inputs
        if sg.tensors[i].constant
    ]
    assert weights and all(len(w.scale) == 1 for w in weights)
    # with ai-edge-quantizer's per-channel weights this model gives cosine 0.0 in LiteRT
    assert _cosine_vs_onnxruntime(tflite, model, shape, tmp_path, meta) >= 0.98


def test_calibration_range_covers_every_sample_not_only_the_first(litert_env, tmp_path):
    """ai-edge-quantizer's own calibrate() averages per-sample ranges (0.95 old + 0.05 new), so a
    quiet first sample would clip every later one; edgebuild takes the min/max over all samples."""
    shape = [1, 8, 32]
    x = np.random.default_rng(1).normal(0, 1, (8, 8, 32)).astype(np.float32)
    x[0] *= 0.05  # the first sample is quiet
    np.savez(tmp_path / "quiet_first.npz", x=x)
    model = onnx_factory.matmul_3d(tmp_path / "mm.onnx")
    _, meta = _convert(
        litert_env,
        tmp_path,
        model,
        shape,
        calibration=tmp_path / "quiet_first.npz",
        precision="int8",
        int8_min_cosine=False,
    )
    q = meta["io"]["inputs"][0]["quantization"]
    low, high = (-128 - q["zero_point"]) * q["scale"], (127 - q["zero_point"]) * q["scale"]
    assert low <= 0.99 * x.min() and high >= 0.99 * x.max(), (low, high, x.min(), x.max())


def test_zero_divisor_div_and_lossy_ops_stay_float_and_are_reported(litert_env, tmp_path):
    shape = [1, 16, 32]
    model = onnx_factory.quiet_token_layer_norm(tmp_path / "ln.onnx")
    tflite, meta = _convert(litert_env, tmp_path, model, shape, precision="int8")
    conv, quant = meta["conversion"], meta["quantization"]
    refused = [k for k in conv["float_ops"] if k["op"] == "DIV" and "LiteRT refuses" in k["why"]]
    assert refused, conv["float_ops"]
    # never called full int8 when ops compute in float
    assert quant["full_integer"] is False and quant["float_ops"] >= conv["float_ops_kept"] >= 2
    assert f"{conv['float_ops_kept']} op(s) kept float" in conv["quantizer"]
    check = conv["int8_check"]
    assert check["history"][0]["cosine"] < 0.99 <= check["cosine_vs_float"]
    assert _cosine_vs_onnxruntime(tflite, model, shape, tmp_path, meta) >= 0.98


def test_fallback_that_would_need_most_ops_float_keeps_only_the_refused_one(litert_env, tmp_path):
    """Without the int8-friendly layers in front, reaching the mark needs nearly every op float:
    past half of them the fallback stops and keeps only what LiteRT refuses, and says so."""
    shape = [1, 16, 32]
    model = onnx_factory.quiet_token_layer_norm(tmp_path / "ln.onnx", depth=0)
    _, meta = _convert(litert_env, tmp_path, model, shape, precision="int8")
    conv = meta["conversion"]
    assert conv["int8_check"]["reached"] is False and conv["int8_check"]["cosine_vs_float"] < 0.99
    assert [k["op"] for k in conv["float_ops"]] == ["DIV"] and conv["float_ops_kept"] == 1
    assert meta["quantization"]["full_integer"] is False


def test_max_with_lower_rank_constant_quantizes_integer_only(litert_env, tmp_path):
    shape = [1, 256]
    model = onnx_factory.max_with_scalar(tmp_path / "max.onnx")
    _, meta = _convert(litert_env, tmp_path, model, shape, precision="int8", integer_only=True)
    assert any("Max/Min constant" in note for note in meta["conversion"]["preparation"])
    assert meta["quantization"]["full_integer"] is True and "int8_check" not in meta["conversion"]


# ------------------------------------------------------------- pieces that need no toolchain


def test_int8_min_cosine_parameter_is_checked():
    from edgebuild.steps.tflite.convert import _params

    assert _params({"int8_min_cosine": False})["int8_min_cosine"] is False
    assert _params({})["int8_min_cosine"] == 0.99
    with pytest.raises(StepFailed, match="int8_min_cosine"):
        _params({"int8_min_cosine": "high"})
    with pytest.raises(StepFailed, match="int8_min_cosine"):
        _params({"int8_min_cosine": 2})


def test_frontier_walks_past_ops_already_float():
    from edgebuild.steps.tflite.accuracy_fallback import _frontier

    producers = {"log": ["add"], "add": ["square", "bias"], "square": ["x"]}
    assert _frontier("log", producers, set()) == ["log"]
    assert sorted(_frontier("log", producers, {"log", "add"})) == ["bias", "square"]
