"""The tensorrt recipe up to the engine, on real onnx/onnxruntime: constant folding, FP16
readiness, INT8 Q/DQ against TensorRT's rules, FP16 lowering, the self-test file, the builder
configuration, and the engine step deferring on a host without TensorRT or a matching GPU."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from step_runner import run_step

from edgebuild.steps.base import Deferred, StepFailed
from edgebuild.steps.tensorrt import STEPS, qdq_rules
from edgebuild.steps.tensorrt.gpu_probe import gpus

PROFILE = {"input": {"min": [1, 1, 8, 8], "opt": [4, 1, 8, 8], "max": [8, 1, 8, 8]}}
ORIN = {
    "device": "jetson-orin-nano",
    "compute_capability": "8.7",
    "tensorrt_versions": ["8.6", "10.3"],
    "device_platform": "jetson",
    "device_memory_mb": 8192,
    "device_fp16": True,
    "device_int8": True,
}


def _init(name, array, dtype=np.float32):
    return numpy_helper.from_array(np.asarray(array, dtype=dtype), name)


def small_cnn(path: Path, extra_scale: float = 1.0) -> Path:
    """Conv-BN-ReLU-pool-Gemm with a dynamic batch and a constant subexpression (2 * 0.5) that
    only folding removes; `extra_scale` multiplies the logits (for FP16 overflow cases)."""
    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("Conv", ["input", "W1", "B1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c1", "s", "b", "m", "v"], ["bn"]),
        helper.make_node("Relu", ["bn"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Mul", ["two", "half"], ["one"]),
        helper.make_node("Mul", ["f", "one"], ["f1"]),
        helper.make_node("Gemm", ["f1", "W2", "B2"], ["gemm"], transB=1),
        helper.make_node("Mul", ["gemm", "scale"], ["logits"]),
    ]
    inits = [
        _init("W1", rng.standard_normal((8, 1, 3, 3)) * 0.5),
        _init("B1", rng.standard_normal(8) * 0.1),
        _init("s", rng.uniform(0.5, 1.5, 8)),
        _init("b", rng.standard_normal(8) * 0.1),
        _init("m", rng.standard_normal(8) * 0.1),
        _init("v", rng.uniform(0.5, 1.5, 8)),
        _init("W2", rng.standard_normal((10, 8)) * 0.3),
        _init("B2", rng.standard_normal(10) * 0.1),
        _init("two", [2.0]),
        _init("half", [0.5]),
        _init("scale", [extra_scale]),
    ]
    graph = helper.make_graph(
        nodes,
        "cnn",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 1, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="session")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("tensorrt")


@pytest.fixture(scope="session")
def source(work) -> Path:
    return small_cnn(work / "cnn.onnx")


@pytest.fixture(scope="session")
def calibration(work) -> Path:
    path = work / "calibration.npz"
    np.savez(path, input=np.random.default_rng(1).standard_normal((48, 1, 8, 8)).astype(np.float32))
    return path


@pytest.fixture(scope="session")
def prepared(work, source, calibration):
    meta = run_step(
        "tensorrt.prepare",
        work / "prepare",
        {"model": source, "calibration": calibration},
        input_shapes={},
        profiles=PROFILE,
    )
    return work / "prepare" / "model.onnx", meta


@pytest.fixture(scope="session")
def lowered(work, prepared, calibration):
    """precision -> (model path, metadata), each built once."""
    result = {}
    for precision in ("fp32", "fp16", "int8"):
        out = work / f"lower-{precision}"
        meta = run_step(
            "tensorrt.quantize",
            out,
            {"model": prepared[0], "calibration": calibration},
            precision=precision,
            calibration_samples=32,
            per_channel=True,
            profiles=PROFILE,
        )
        result[precision] = (out / "model.onnx", meta)
    return result


def ort_run(path: Path, feed: dict) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, feed)[0]


# ----------------------------------------------------------------------------------- prepare
def test_prepare_folds_constants_and_keeps_results(prepared, source):
    path, meta = prepared
    model = onnx.load(str(path))
    ops = [n.op_type for n in model.graph.node]
    assert meta["metrics"]["nodes_after"] < meta["metrics"]["nodes_before"]
    assert "BatchNormalization" not in ops  # fused into the Conv
    assert ops.count("Mul") == 1  # 2 * 0.5 folded away, the real Mul stays
    assert {imp.domain for imp in model.opset_import} == {""}
    feed = {"input": np.random.default_rng(5).standard_normal((3, 1, 8, 8)).astype(np.float32)}
    np.testing.assert_allclose(ort_run(path, feed), ort_run(source, feed), rtol=1e-5, atol=1e-5)
    assert meta["io"]["inputs"] == [{"name": "input", "shape": ["batch", 1, 8, 8], "dtype": "float32"}]
    assert meta["fp16_readiness"]["ready"] is True
    assert meta["fp16_readiness"]["activations_checked_samples"] == 8


def test_prepare_pins_input_shapes_without_profile(work, source):
    meta = run_step(
        "tensorrt.prepare",
        work / "pinned",
        {"model": source},
        input_shapes={"input": [2, 1, 8, 8]},
        profiles=[],
    )
    assert meta["io"]["inputs"][0]["shape"] == [2, 1, 8, 8]
    assert meta["io"]["outputs"][0]["shape"] == [2, 10]
    assert meta["pinned_inputs"] == ["input"]


def test_prepare_rejects_conflicting_input_shape(work, source):
    with pytest.raises(StepFailed, match=r"input_shapes.input: dimension 1 is 1 in the model, not 3"):
        run_step(
            "tensorrt.prepare", work / "bad-shape", {"model": source}, input_shapes={"input": [1, 3, 8, 8]}
        )


def test_prepare_rejects_non_onnx(work):
    folder = work / "hf-model"
    folder.mkdir()
    with pytest.raises(StepFailed, match="takes an ONNX model"):
        run_step("tensorrt.prepare", work / "not-onnx", {"model": folder})


def test_fp16_readiness_reports_overflowing_constants_and_activations(work, calibration):
    source = small_cnn(work / "hot.onnx", extra_scale=1e5)
    meta = run_step(
        "tensorrt.prepare", work / "hot", {"model": source, "calibration": calibration}, profiles=PROFILE
    )
    readiness = meta["fp16_readiness"]
    assert readiness["ready"] is False
    assert [item["name"] for item in readiness["weights_overflow"]] == ["scale"]
    assert readiness["weights_overflow"][0]["max_abs"] == pytest.approx(1e5)
    assert any(item["name"] == "logits" for item in readiness["activations_overflow"])
    assert readiness["activation_max_abs"] > 65504


# ----------------------------------------------------------------------------------- lowering
def test_int8_is_explicit_qdq_that_passes_tensorrt_rules(lowered):
    path, meta = lowered["int8"]
    model = onnx.load(str(path))
    assert qdq_rules.check(model) == []
    ops = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv", "Gemm"} <= ops
    zero_points = [i for i in model.graph.initializer if "zero_point" in i.name]
    assert zero_points and all(
        i.data_type == TensorProto.INT8 and not numpy_helper.to_array(i).any() for i in zero_points
    )
    # no int32 bias quantization: every DequantizeLinear reads INT8
    assert not any(i.data_type == TensorProto.INT32 for i in model.graph.initializer)
    assert meta["metrics"]["min_cosine"] > 0.99
    assert meta["metrics"]["qdq_nodes"] == sum(
        n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node
    )


def test_onnxruntime_default_qdq_breaks_tensorrt_rules(work, prepared, calibration):
    """The checker must catch what TensorRT rejects: ORT's default QDQ output (uint8 asymmetric
    activations, int32 bias into DequantizeLinear)."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    from edgebuild.steps.tensorrt import calibration_data
    from edgebuild.steps.tensorrt.quantize import _Reader

    inputs = [{"name": "input", "shape": ["batch", 1, 8, 8], "dtype": "float32"}]
    feeds = list(calibration_data.feeds(inputs, calibration_data.load(calibration), 16))
    target = work / "ort-default-qdq.onnx"
    quantize_static(str(prepared[0]), str(target), _Reader(feeds), quant_format=QuantFormat.QDQ)
    problems = qdq_rules.check(onnx.load(str(target)))
    assert any("is not 0 (asymmetric quantization)" in p for p in problems)
    assert any("is INT32, TensorRT needs" in p for p in problems)
    quantize_static(
        str(prepared[0]),
        str(target),
        _Reader(feeds),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QUInt8,
        extra_options={"QuantizeBias": False},
    )
    problems = qdq_rules.check(onnx.load(str(target)))
    assert any("is UINT8, TensorRT needs" in p for p in problems)
    assert not any("INT32" in p for p in problems)


def test_fp16_lowering_makes_an_fp16_network_with_fp32_io(lowered):
    path, meta = lowered["fp16"]
    model = onnx.load(str(path))
    assert {i.data_type for i in model.graph.initializer} == {TensorProto.FLOAT16}
    assert model.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert model.graph.output[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert 0 < meta["metrics"]["max_abs_error"] < 1e-2
    assert meta["metrics"]["min_cosine"] > 0.9999


def test_fp32_lowering_is_the_prepared_model(lowered, prepared):
    assert lowered["fp32"][0].read_bytes() == prepared[0].read_bytes()


def test_int8_without_calibration_data_fails_clearly(work, prepared):
    with pytest.raises(StepFailed, match="precision int8 needs calibration data"):
        run_step("tensorrt.quantize", work / "no-cal", {"model": prepared[0]}, precision="int8")


def test_calibration_data_missing_an_input_is_named(work, prepared):
    bad = work / "bad-cal.npz"
    np.savez(bad, image=np.zeros((4, 1, 8, 8), np.float32))
    with pytest.raises(StepFailed, match=r"no array for model input\(s\) input \(arrays: image\)"):
        run_step(
            "tensorrt.quantize",
            work / "bad-cal",
            {"model": prepared[0], "calibration": bad},
            precision="int8",
        )


# ----------------------------------------------------------------------------------- self-test
@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_selftest_file_follows_the_convention(work, prepared, lowered, calibration, precision):
    out = work / f"selftest-{precision}"
    meta = run_step(
        "tensorrt.selftest",
        out,
        {"model": prepared[0], "lowered": lowered[precision][0], "calibration": calibration},
        precision=precision,
        profiles=PROFILE,
    )
    with np.load(out / "selftest.npz") as data:
        arrays = {k: data[k] for k in data.files}
    assert sorted(arrays) == ["atol", "expected.logits", "input.input", "min_cosine", "rtol"]
    assert arrays["input.input"].shape == (4, 1, 8, 8)  # the profile's opt batch
    assert all(arrays[k].shape == () for k in ("atol", "rtol", "min_cosine"))
    expected = ort_run(prepared[0], {"input": arrays["input.input"]})
    np.testing.assert_array_equal(arrays["expected.logits"], expected)
    # the lowered network, standing in for the engine, passes its own self-test...
    got = ort_run(lowered[precision][0], {"input": arrays["input.input"]})
    assert np.allclose(got, expected, atol=float(arrays["atol"]), rtol=float(arrays["rtol"]))
    # ...while an unrelated output does not
    assert not np.allclose(expected[::-1], expected, atol=float(arrays["atol"]), rtol=float(arrays["rtol"]))
    assert meta["selftest"]["precision"] == precision


# ----------------------------------------------------------------------------------- config + build
@pytest.fixture(scope="session")
def builder_config(work, lowered):
    out = work / "config"
    meta = run_step(
        "tensorrt.config",
        out,
        {"model": lowered["int8"][0]},
        **ORIN,
        precision="int8",
        workspace_mb=512,
        optimization_level=4,
        hardware_compatibility="none",
        version_compatible=False,
        profiles=PROFILE,
    )
    return out / "builder_config.json", meta


def test_builder_config_is_the_exact_configuration(builder_config, lowered):
    path, meta = builder_config
    config = json.loads(path.read_text())
    assert config == meta["builder_config"]
    assert config["builder"] == {
        "workspace_bytes": 512 << 20,
        "optimization_level": 4,
        "hardware_compatibility": "none",
        "version_compatible": False,
        "profiles": [PROFILE],
    }
    assert config["precision"] == "int8" and config["compute_capability"] == "8.7"
    import hashlib

    assert config["onnx_sha256"] == hashlib.sha256(lowered["int8"][0].read_bytes()).hexdigest()


def test_config_step_fails_on_device_mistakes(work, lowered):
    nano = dict(
        ORIN, device="jetson-nano", compute_capability="5.3", tensorrt_versions=["8.2"], device_int8=False
    )
    with pytest.raises(StepFailed, match="device 'jetson-nano' has no INT8 support"):
        run_step(
            "tensorrt.config", work / "config-nano", {"model": lowered["int8"][0]}, **nano, precision="int8"
        )
    with pytest.raises(StepFailed, match="input 'input' has dynamic dimensions"):
        run_step(
            "tensorrt.config",
            work / "config-noprofile",
            {"model": lowered["fp16"][0]},
            **ORIN,
            precision="fp16",
        )


def _tensorrt_importable() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorrt") is not None


def test_build_defers_without_tensorrt_or_gpu(work, builder_config, lowered):
    if _tensorrt_importable() and any(g.compute_capability == "8.7" for g in gpus()):
        pytest.skip("this host has TensorRT and an 8.7 GPU: the engine is built (tests/test_tensorrt_gpu.py)")
    out = work / "build"
    out.mkdir()
    with pytest.raises(Deferred) as raised:
        run_step("tensorrt.build", out, {"model": lowered["int8"][0], "config": builder_config[0]}, ORIN)
    message = str(raised.value)
    assert "builds the engine on first run on the device (jetson-orin-nano: compute capability 8.7" in message
    assert ("TensorRT is not installed" in message) == (not _tensorrt_importable())
    assert list(out.iterdir()) == []


def test_build_step_declares_what_keys_and_places_it():
    step = STEPS["tensorrt.build"]()
    assert step.uses == ("tensorrt",)
    assert step.outputs == ("model.engine", "timing.cache")
    assert step.resources({"compute_capability": "8.7"}) == {"gpu-sm87": 1}


# ----------------------------------------------------------------------------------- deferred bundle
@pytest.fixture(scope="session")
def deferred_bundle(work, prepared, lowered, calibration):
    """A signed, deferred fp16 bundle: prepared ONNX, builder_config.json, self-test, loader."""
    import tarfile

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from edgebuild.bundle.spec import BundleSpec
    from edgebuild.bundle.writer import write_bundle

    run_step(
        "tensorrt.selftest",
        work / "b-selftest",
        {"model": prepared[0], "lowered": lowered["fp16"][0], "calibration": calibration},
        precision="fp16",
        profiles=PROFILE,
    )
    run_step(
        "tensorrt.config",
        work / "b-config",
        {"model": lowered["fp16"][0]},
        **ORIN,
        precision="fp16",
        workspace_mb=256,
        profiles=PROFILE,
    )
    key = Ed25519PrivateKey.generate()
    public = work / "bundle.pub.pem"
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    spec = BundleSpec(
        project="demo",
        version="1.0.0",
        target="orin-fp16",
        device="jetson-orin-nano",
        recipe="tensorrt",
        runtime="tensorrt",
        artifacts={
            "cnn_fp16.onnx": lowered["fp16"][0],
            "builder_config.json": work / "b-config" / "builder_config.json",
        },
        io=lowered["fp16"][1]["io"],
        selftest=work / "b-selftest" / "selftest.npz",
        status="deferred",
        remaining="build the TensorRT engine on the device",
    )
    archive = write_bundle(spec, work / "bundles", key)
    with tarfile.open(archive) as tar:
        tar.extractall(work / "unpacked", filter="data")
    return work / "unpacked" / spec.folder_name, public


def test_deferred_bundle_verifies_and_says_what_it_needs(deferred_bundle):
    import subprocess
    import sys

    folder, public = deferred_bundle
    assert {"cnn_fp16.onnx", "builder_config.json", "loader.py", "selftest"} <= {
        p.name for p in folder.iterdir()
    }
    verify = subprocess.run(
        [sys.executable, "loader.py", "verify", "--key", str(public)],
        cwd=folder,
        capture_output=True,
        text=True,
    )
    assert verify.returncode == 0, verify.stderr
    assert "signature verified" in verify.stdout
    if _tensorrt_importable() and gpus():
        pytest.skip("TensorRT and a GPU are here: first-run builds are tested in tests/test_tensorrt_gpu.py")
    selftest = subprocess.run(
        [sys.executable, "loader.py", "selftest"], cwd=folder, capture_output=True, text=True
    )
    assert selftest.returncode == 2
    assert "error: TensorRT is not installed" in selftest.stderr
    assert "note: this bundle is deferred: build the TensorRT engine on the device" in selftest.stdout
