"""Check-time validation of TensorRT targets against the device profiles in recipes/tensorrt.toml."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from edgebuild.steps.tensorrt import validate_target
from edgebuild.steps.tensorrt.versions import matches

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "tensorrt.toml"
STATIC = [{"name": "input", "shape": [1, 3, 224, 224], "dtype": "float32"}]
DYNAMIC = [{"name": "input", "shape": ["batch", 3, 224, 224], "dtype": "float32"}]
PROFILE = {"input": {"min": [1, 3, 224, 224], "opt": [4, 3, 224, 224], "max": [8, 3, 224, 224]}}


@pytest.fixture(scope="module")
def recipe() -> dict:
    return tomllib.loads(RECIPE.read_text())


def device(recipe, name):
    return dict(recipe["devices"][name], name=name)


def params(recipe, **overrides):
    return {**recipe["parameters"], **overrides}


def test_recipe_has_every_device_class_the_issue_names(recipe):
    wanted = {
        "jetson-orin-nano",
        "jetson-orin-nx",
        "jetson-agx-orin",
        "jetson-agx-xavier",
        "t4",
        "a10",
        "a100",
        "l4",
        "rtx-4090",
        "h100",
    }
    assert wanted <= set(recipe["devices"])
    for name, profile in recipe["devices"].items():
        assert {"compute_capability", "memory_mb", "tensorrt_versions", "fp16", "int8", "platform"} <= set(
            profile
        ), name
    assert recipe["devices"]["jetson-orin-nano"]["compute_capability"] == "8.7"
    assert recipe["devices"]["h100"]["compute_capability"] == "9.0"
    assert recipe["recipe"]["runtime"] == "tensorrt" and recipe["recipe"]["name"] == "tensorrt"


def test_recipe_loads_with_edgebuilds_recipe_parser():
    """Every step kind exists and every input names an output its upstream step declares."""
    from edgebuild.recipes import parse_recipe

    parsed = parse_recipe(RECIPE)
    assert [s.step for s in parsed.steps] == [
        "tensorrt.prepare",
        "coverage.check",
        "tensorrt.quantize",
        "tensorrt.selftest",
        "tensorrt.config",
        "tensorrt.build",
    ]
    assert parsed.runtime == "tensorrt" and parsed.default_device == ""


@pytest.mark.parametrize("name", ["jetson-orin-nano", "jetson-agx-xavier", "t4", "a100", "h100"])
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_supported_devices_accept_default_targets(recipe, name, precision):
    assert validate_target(params(recipe, precision=precision), device(recipe, name), STATIC) == []


def test_int8_on_a_device_without_int8(recipe):
    problems = validate_target(params(recipe, precision="int8"), device(recipe, "jetson-nano"), STATIC)
    assert (
        "precision: device 'jetson-nano' has no INT8 support (compute capability 5.3); use fp32 or fp16"
        in problems
    )
    assert any("runs TensorRT 8.2 only; this recipe needs 8.5 or newer" in p for p in problems)


def test_dynamic_input_without_profile(recipe):
    problems = validate_target(params(recipe), device(recipe, "a10"), DYNAMIC)
    assert problems == [
        "profiles: input 'input' has dynamic dimensions [0] (shape ['batch', 3, 224, 224]); "
        "add a min/opt/max profile for it or fix it in models.<model>.input_shapes"
    ]
    assert validate_target(params(recipe, profiles=PROFILE), device(recipe, "a10"), DYNAMIC) == []
    assert validate_target(params(recipe, profiles=[PROFILE, PROFILE]), device(recipe, "a10"), DYNAMIC) == []
    pinned = params(recipe, input_shapes={"input": [2, 3, 224, 224]})
    assert validate_target(pinned, device(recipe, "a10"), DYNAMIC) == []


@pytest.mark.parametrize(
    "profile, message",
    [
        ({"image": PROFILE["input"]}, "profiles.image: the model has no input 'image' (inputs: input)"),
        (
            {"input": {"min": [1, 3, 224, 224], "max": [8, 3, 224, 224]}},
            "profiles.input: needs exactly min, opt and max shapes",
        ),
        (
            {"input": {"min": [8, 3, 224, 224], "opt": [4, 3, 224, 224], "max": [8, 3, 224, 224]}},
            "profiles.input: needs min <= opt <= max in every dimension",
        ),
        (
            {"input": {"min": [1, 3, 224], "opt": [4, 3, 224], "max": [8, 3, 224]}},
            "profiles.input.min: has 3 dimensions, the model input has 4",
        ),
        (
            {"input": {"min": [1, 1, 224, 224], "opt": [4, 1, 224, 224], "max": [8, 1, 224, 224]}},
            "profiles.input: dimension 1 is fixed to 3 by the model",
        ),
        (
            {"input": {"min": [0, 3, 224, 224], "opt": [4, 3, 224, 224], "max": [8, 3, 224, 224]}},
            "profiles.input.min: must be a list of positive integers, got [0, 3, 224, 224]",
        ),
    ],
)
def test_profile_mistakes(recipe, profile, message):
    assert message in validate_target(params(recipe, profiles=profile), device(recipe, "a10"), DYNAMIC)


def test_builder_option_mistakes(recipe):
    xavier = device(recipe, "jetson-agx-xavier")
    assert validate_target(params(recipe, optimization_level=5), xavier, STATIC) == [
        "optimization_level: needs TensorRT 8.6+, device 'jetson-agx-xavier' runs 8.5"
    ]
    assert "optimization_level: must be an integer 0-5, got 7" in validate_target(
        params(recipe, optimization_level=7), device(recipe, "a10"), STATIC
    )
    assert validate_target(
        params(recipe, hardware_compatibility="ampere_plus"), device(recipe, "t4"), STATIC
    ) == ["hardware_compatibility: 'ampere_plus' needs compute capability 8.0+, device 't4' has 7.5"]
    assert (
        validate_target(params(recipe, hardware_compatibility="ampere_plus"), device(recipe, "l4"), STATIC)
        == []
    )
    assert any(
        "not support hardware-compatible engines on Jetson" in p
        for p in validate_target(
            params(recipe, hardware_compatibility="same_compute_capability"),
            device(recipe, "jetson-agx-orin"),
            STATIC,
        )
    )
    assert validate_target(
        params(recipe, workspace_mb=10_000), device(recipe, "jetson-orin-nano"), STATIC
    ) == ["workspace_mb: 10000 MiB exceeds device 'jetson-orin-nano' memory of 8192 MiB"]
    assert "precision: 'bf16' is not one of fp32, fp16, int8" in validate_target(
        params(recipe, precision="bf16"), device(recipe, "a10"), STATIC
    )


def test_version_matching():
    assert matches("10.3.0.30", "10.3") and matches("10.15.1", "10") and matches("11.4.1", "11.4")
    assert not matches("10.15.1", "10.3") and not matches("11.0.0", "10") and not matches("10.3", "")
