"""Parts of the Core ML steps that need no toolchain: parameter checks and the Swift snippet.
These run in edgebuild's own environment (standard library only)."""

from __future__ import annotations

import pytest

from edgebuild.steps.base import StepFailed
from edgebuild.steps.coreml import STEPS, swift_snippet
from edgebuild.steps.coreml import options

DIGITS_IO = {
    "inputs": [{"name": "input", "shape": [1, 1, 8, 8], "dtype": "float32"}],
    "outputs": [{"name": "logits", "shape": [1, 10], "dtype": "float32"}],
}


def test_steps_are_registered_under_their_names():
    assert set(STEPS) == {"coreml.convert", "coreml.compress", "coreml.inspect", "coreml.verify"}
    for name, cls in STEPS.items():
        assert cls.name == name and cls.outputs


def test_importing_the_step_package_loads_no_heavy_library():
    import subprocess
    import sys

    code = (
        "import sys, edgebuild.steps.coreml; heavy = [m for m in ('torch', 'coremltools', 'onnx2torch', 'onnx', 'numpy') "
        "if m in sys.modules]; print(','.join(heavy))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == ""


def test_device_values_fill_in_when_the_target_gives_none():
    params = {
        "minimum_deployment_target": "",
        "device_minimum_deployment_target": "macOS13",
        "compute_units": "",
        "device_compute_units": "CPU_AND_GPU",
    }
    parsed = options.convert_options(params)
    assert (parsed.deployment_target, parsed.compute_units) == ("macOS13", "CPU_AND_GPU")
    own = options.convert_options(
        {**params, "minimum_deployment_target": "iOS18", "compute_units": "CPU_ONLY"}
    )
    assert (own.deployment_target, own.compute_units) == ("iOS18", "CPU_ONLY")


@pytest.mark.parametrize(
    "params, message",
    [
        ({"minimum_deployment_target": "ios16"}, r"expected e.g. iOS16"),
        ({"minimum_deployment_target": "macOS11"}, r"ML Program packages need macOS12 or later"),
        ({"input_type": "picture"}, r"parameter 'input_type' = 'picture'"),
        ({"input_type": "image", "image_bias": "zero"}, r"parameter 'image_bias' = 'zero'"),
        ({"input_type": "image", "color_layout": "YUV"}, r"parameter 'color_layout' = 'YUV'"),
        ({"input_shapes": {"x": [1, 0]}}, r"'input_shapes.x' = \[1, 0\]: expected a list of positive ints"),
        ({"input_descriptions": ["x"]}, r"parameter 'input_descriptions': expected a table"),
    ],
)
def test_bad_parameters_fail_with_the_parameter_named(params, message):
    with pytest.raises(StepFailed, match=message):
        options.convert_options(params)


@pytest.mark.parametrize(
    "value, ok",
    [
        ("none", True),
        ("int8", True),
        ("palettize-4", True),
        ("palettize-5", False),
        ("int4-block", True),
        ("int4", False),
    ],
)
def test_compression_values(value, ok):
    if ok:
        assert options.compression({"compression": value}) == value
    else:
        with pytest.raises(StepFailed, match=r"parameter 'compression'"):
            options.compression({"compression": value})


def test_swift_snippet_for_a_tensor_model():
    swift = swift_snippet(DIGITS_IO, "digits", compute_units="CPU_AND_NE")
    assert 'Bundle.main.url(forResource: "digits", withExtension: "mlmodelc")' in swift
    assert "configuration.computeUnits = .cpuAndNeuralEngine" in swift
    assert "static func predict(model: MLModel, input: [Float])" in swift
    assert "precondition(input.count == 64" in swift
    assert 'MLDictionaryFeatureProvider(dictionary: ["input": inputFeature])' in swift
    assert swift.count("{") == swift.count("}")


def test_swift_snippet_escapes_names_and_handles_images_and_half_floats():
    io = {
        "inputs": [
            {
                "name": "image.0",
                "shape": [1, 3, 32, 48],
                "dtype": "uint8",
                "image": {"scale": 1 / 255, "bias": [0, 0, 0], "color_layout": "BGR"},
            },
            {"name": "in", "shape": [2], "dtype": "float16"},
        ],
        "outputs": [{"name": "scores", "shape": [1, 5], "dtype": "float32"}],
    }
    swift = swift_snippet(io, "2-stage model")
    assert "enum V2StageModelLoader" in swift  # a valid Swift type name
    assert "image0: CGImage" in swift and "BGR image 48x32" in swift
    assert "inValue: [Float16]" in swift  # `in` is a Swift keyword
    assert "NSNumber(value: Float(v))" in swift
    assert '"image.0": image0Feature' in swift
    assert "import CoreGraphics" in swift


def test_bundled_swift_is_the_same_generator_with_image_inputs(tmp_path):
    """Core ML bundles carry LoadModel.swift from swift_snippet too (no second generator): image
    inputs take a CGImage, and the unpacked bundle's model is compiled on the device."""
    from edgebuild.bundle.loaders import render_swift
    from edgebuild.bundle.spec import BundleSpec

    io = {
        "inputs": [
            {"name": "x", "shape": [1, 3, 32, 48], "dtype": "float32", "image": {"color_space": "RGB"}}
        ],
        "outputs": [{"name": "probs", "shape": [1, 5], "dtype": "float32"}],
    }
    spec = BundleSpec(
        project="demo",
        version="1.0.0",
        target="mac",
        device="mac",
        recipe="coreml",
        runtime="coreml",
        artifacts={"Model.mlpackage": tmp_path},
        io=io,
        selftest=None,
        runtime_options={"compute_units": "CPU_ONLY"},
    )
    swift = render_swift(spec)
    assert swift == swift_snippet(
        io, "Model", "CPU_ONLY", model_file="Model.mlpackage", bundle_name="demo-mac-1.0.0"
    )
    assert "x: CGImage" in swift and "imageConstraint" in swift and "import CoreGraphics" in swift
    assert 'MLModel.compileModel(at: bundleFolder.appendingPathComponent("Model.mlpackage"))' in swift
    assert "configuration.computeUnits = .cpuOnly" in swift and "loader.py verify" in swift
    assert swift.count("{") == swift.count("}")
    # a bundle whose I/O is unknown: inputs by name, every multi-array output returned
    bare = render_swift(BundleSpec(**{**spec.__dict__, "io": {}}))
    assert "static func predict(model: MLModel, inputs: [String: MLMultiArray])" in bare
    assert "for name in result.featureNames" in bare and bare.count("{") == bare.count("}")
