"""Device profiles name their platform (OS, oldest Python, OpenSSL, runtime package and version):
checked when a recipe is read, and stated in each bundle's manifest and README."""

from __future__ import annotations

import json
import tarfile

import pytest

from conftest import run_cli, write_demo
from edgebuild.device_platform import LOADER_MIN_PYTHON, REQUIRED_KEYS, bundle_requirements, platform_problem
from edgebuild.errors import ConfigError
from edgebuild.recipes import load_recipe, parse_recipe, recipe_files


def test_every_builtin_device_names_its_platform():
    seen = 0
    for name in recipe_files(None):
        for device, profile in load_recipe(name).devices.items():
            missing = [key for key in REQUIRED_KEYS if key not in profile]
            assert not missing, f"recipes/{name}.toml [devices.{device}] lacks {missing}"
            seen += 1
    assert seen >= 30


@pytest.mark.parametrize(
    "recipe,device,expected",
    [
        (
            "edgetpu",
            "coral-devboard",
            {"python": "3.7", "openssl": "1.1.1", "runtime_package": "tflite_runtime"},
        ),
        ("tensorrt", "jetson-xavier-nx", {"python": "3.8", "openssl": "1.1.1f", "runtime_version": "8.5"}),
        ("tensorrt", "jetson-orin-nano", {"python": "3.10", "runtime_version": "10.3"}),
        ("tflite", "raspberry-pi", {"python": "3.11", "os": "Raspberry Pi OS 12 (bookworm), arm64"}),
        ("coreml", "iphone-a15", {"python": "none", "openssl": "none"}),
        ("onnxruntime", "cpu", {"python": "3.9"}),
    ],
)
def test_the_named_platforms(recipe, device, expected):
    profile = load_recipe(recipe).devices[device]
    assert {key: profile[key] for key in expected} == expected


def test_bundle_requirements_never_go_below_the_loaders_python():
    assert bundle_requirements({}) == {"python": f">={LOADER_MIN_PYTHON}"}
    jetson_nano = load_recipe("tensorrt").devices["jetson-nano"]  # JetPack 4.6 ships 3.6
    assert bundle_requirements(jetson_nano)["python"] == f">={LOADER_MIN_PYTHON}"
    assert bundle_requirements(jetson_nano)["device_python"] == "3.6"
    assert bundle_requirements(load_recipe("tflite").devices["raspberry-pi"])["python"] == ">=3.11"
    assert (
        bundle_requirements(load_recipe("coreml").devices["iphone-a15"])["python"] == f">={LOADER_MIN_PYTHON}"
    )


@pytest.mark.parametrize(
    "change,key,words",
    [
        ({"python": "3.x"}, "python", "not a Python version"),
        ({"python": 3.9}, "python", "must be a non-empty string"),
        ({"openssl": "one"}, "openssl", "not an OpenSSL version"),
        ({"runtime_version": "latest"}, "runtime_version", "not a version"),
        ({"os": None}, "os", "missing"),
    ],
)
def test_platform_mistakes_are_named(change, key, words):
    profile = {"os": "Debian 12", "python": "3.11", "openssl": "3.0", "runtime_package": "onnxruntime"}
    profile.update(change)
    profile = {k: v for k, v in profile.items() if v is not None}
    problem = platform_problem(profile)
    assert problem is not None and problem[0] == key and words in problem[1]
    assert platform_problem({"description": "a quick profile without platform keys"}) is None


def _broken_recipe(project, value: str) -> None:
    text = load_recipe("onnxruntime").file.read_text()
    assert 'python = "3.9"' in text
    (project / "recipes").mkdir()
    (project / "recipes" / "onnxruntime.toml").write_text(
        text.replace('python = "3.9"', f'python = "{value}"', 1)
    )


def test_a_bad_platform_key_in_a_project_recipe_exits_2_naming_file_line_and_key(tmp_path):
    project = write_demo(tmp_path / "p")
    _broken_recipe(project, "3.x")
    with pytest.raises(
        ConfigError, match=r"onnxruntime\.toml:\d+: devices\.cpu\.python: '3\.x' is not a Python"
    ):
        parse_recipe(project / "recipes" / "onnxruntime.toml")
    result = run_cli(project, "build", "-n")
    assert result.rc == 2
    assert "devices.cpu.python" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_demo_bundles_state_their_requirements(built_demo):
    bundle = built_demo / "bundles" / "demo-cpu-fp32-1.0.0.tar.gz"
    with tarfile.open(bundle) as tar:
        manifest = json.loads(tar.extractfile("demo-cpu-fp32-1.0.0/manifest.json").read())
        readme = tar.extractfile("demo-cpu-fp32-1.0.0/README.md").read().decode()
    assert manifest["requirements"]["python"] == ">=3.9"
    assert manifest["requirements"]["runtime_package"] == "onnxruntime"
    assert "Python 3.9 or newer for `loader.py`" in readme
