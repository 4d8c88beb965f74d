"""How a builder_config.json turns into TensorRT builder API calls, for TensorRT 8.6, 10.x and 11.x,
in both the build step and the generated loader (which builds on first run on the device).

TensorRT cannot be installed anywhere in this workplace (no real wheel on PyPI, no GPU; see
/work/shared/facts/tensorrt.md), so these tests drive a TEST DOUBLE of the `tensorrt` module that
records calls and builds nothing. The real API is exercised by tests/test_tensorrt_gpu.py, which
runs only where `tensorrt` imports and a GPU is present."""

from __future__ import annotations

import ast
import importlib.util
import json
import sys
import types
from pathlib import Path

import pytest
from step_runner import run_step

from edgebuild.steps.base import Deferred, StepFailed
from edgebuild.steps.tensorrt import engine_builder, gpu_probe

PROFILE = {"input": {"min": [1, 1, 8, 8], "opt": [4, 1, 8, 8], "max": [8, 1, 8, 8]}}


def make_config(precision="int8", hardware="none", version_compatible=False, profiles=(PROFILE,)):
    return {
        "schema": 1,
        "device": "a10",
        "compute_capability": "8.6",
        "tensorrt_versions": ["10", "11"],
        "precision": precision,
        "onnx_sha256": None,
        "io": {"inputs": [], "outputs": []},
        "builder": {
            "workspace_bytes": 256 << 20,
            "optimization_level": 5,
            "hardware_compatibility": hardware,
            "version_compatible": version_compatible,
            "profiles": list(profiles),
        },
    }


def fake_tensorrt(version: str, parse_ok: bool = True, build_ok: bool = True) -> types.ModuleType:
    """Test double of the TensorRT Python API surface the builder uses. 11.x has no FP16/INT8
    builder flags, as in the real 11.x, so using them fails the way the real module would."""
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    trt.calls = calls = []
    major = int(version.split(".")[0])

    def enum(name, *members):
        return type(name, (), {m: f"{name}.{m}" for m in members})

    trt.Logger = type("Logger", (), {"WARNING": 2, "__init__": lambda self, level=2: None})
    trt.NetworkDefinitionCreationFlag = type("NetworkDefinitionCreationFlag", (), {"EXPLICIT_BATCH": 0})
    trt.MemoryPoolType = enum("MemoryPoolType", "WORKSPACE")
    flags = ["VERSION_COMPATIBLE"] + (["FP16", "INT8"] if major < 11 else [])
    trt.BuilderFlag = enum("BuilderFlag", *flags)
    trt.HardwareCompatibilityLevel = enum(
        "HardwareCompatibilityLevel", "NONE", "AMPERE_PLUS", "SAME_COMPUTE_CAPABILITY"
    )

    class Error:
        def desc(self):
            return "Unsupported operator FancyOp"

    class OnnxParser:
        num_errors = 0 if parse_ok else 1

        def __init__(self, network, logger):
            pass

        def parse_from_file(self, path):
            calls.append(("parse", Path(path).name))
            return parse_ok

        def get_error(self, index):
            return Error()

    class TimingCache:
        def __init__(self, data):
            self.data = data

        def serialize(self):
            return self.data + b"+timed"

    class Profile:
        def set_shape(self, name, lo, mid, hi):
            calls.append(("profile.set_shape", name, lo, mid, hi))

    class Config:
        def __setattr__(self, name, value):
            calls.append(("config." + name, value))
            object.__setattr__(self, name, value)

        builder_optimization_level = 3

        def set_memory_pool_limit(self, pool, size):
            calls.append(("set_memory_pool_limit", pool, size))

        def set_flag(self, flag):
            calls.append(("set_flag", flag))

        def add_optimization_profile(self, profile):
            calls.append(("add_optimization_profile",))

        def create_timing_cache(self, data):
            calls.append(("create_timing_cache", data))
            return TimingCache(data)

        def set_timing_cache(self, cache, ignore_mismatch):
            object.__setattr__(self, "_cache", cache)

        def get_timing_cache(self):
            return self._cache

    class Builder:
        def __init__(self, logger):
            pass

        def create_network(self, flags):
            calls.append(("create_network", flags))
            return object()

        def create_builder_config(self):
            return Config()

        def create_optimization_profile(self):
            return Profile()

        def build_serialized_network(self, network, config):
            calls.append(("build_serialized_network",))
            return b"ENGINE" if build_ok else None

    trt.OnnxParser, trt.Builder = OnnxParser, Builder
    return trt


@pytest.fixture(scope="module")
def rendered_loader(tmp_path_factory):
    """The generated loader.py for a TensorRT bundle, imported as a module."""
    from edgebuild.bundle.loaders import render_loader
    from edgebuild.bundle.spec import BundleSpec

    spec = BundleSpec(
        project="demo",
        version="1.0.0",
        target="orin",
        device="jetson-orin-nano",
        recipe="tensorrt",
        runtime="tensorrt",
        artifacts={},
        io={},
        selftest=None,
    )
    path = tmp_path_factory.mktemp("loader") / "loader.py"
    path.write_text(render_loader(spec))
    module_spec = importlib.util.spec_from_file_location("trt_loader_under_test", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return path, module


def test_tensorrt_10_int8_uses_precision_flags(tmp_path):
    trt = fake_tensorrt("10.15.1.29")
    engine, cache = engine_builder.build_engine(trt, tmp_path / "m.onnx", make_config("int8"), b"old")
    assert (engine, cache) == (b"ENGINE", b"old+timed")
    assert trt.calls == [
        ("create_network", 0),
        ("parse", "m.onnx"),
        ("set_memory_pool_limit", "MemoryPoolType.WORKSPACE", 256 << 20),
        ("config.builder_optimization_level", 5),
        ("set_flag", "BuilderFlag.INT8"),
        ("set_flag", "BuilderFlag.FP16"),
        ("profile.set_shape", "input", (1, 1, 8, 8), (4, 1, 8, 8), (8, 1, 8, 8)),
        ("add_optimization_profile",),
        ("create_timing_cache", b"old"),
        ("build_serialized_network",),
    ]


def test_tensorrt_11_is_strongly_typed_without_precision_flags(tmp_path):
    trt = fake_tensorrt("11.4.0.106")
    engine_builder.build_engine(
        trt, tmp_path / "m.onnx", make_config("fp16", hardware="ampere_plus", version_compatible=True)
    )
    assert not [
        c for c in trt.calls if c[0] == "set_flag" and c[1] in ("BuilderFlag.FP16", "BuilderFlag.INT8")
    ]
    assert ("config.hardware_compatibility_level", "HardwareCompatibilityLevel.AMPERE_PLUS") in trt.calls
    assert ("set_flag", "BuilderFlag.VERSION_COMPATIBLE") in trt.calls


def test_tensorrt_8_needs_explicit_batch(tmp_path):
    trt = fake_tensorrt("8.6.1")
    engine_builder.build_engine(trt, tmp_path / "m.onnx", make_config("fp16", profiles=()))
    assert trt.calls[0] == ("create_network", 1)
    assert ("set_flag", "BuilderFlag.FP16") in trt.calls
    assert not [c for c in trt.calls if c[0] == "add_optimization_profile"]


def test_parser_and_builder_failures_are_reported(tmp_path):
    with pytest.raises(
        engine_builder.EngineBuildError, match="parser rejected .*m.onnx: Unsupported operator FancyOp"
    ):
        engine_builder.build_engine(
            fake_tensorrt("10.3.0", parse_ok=False), tmp_path / "m.onnx", make_config()
        )
    with pytest.raises(engine_builder.EngineBuildError, match="could not build an engine"):
        engine_builder.build_engine(
            fake_tensorrt("10.3.0", build_ok=False), tmp_path / "m.onnx", make_config()
        )


@pytest.mark.parametrize(
    "version, precision, hardware",
    [("8.6.1", "fp16", "none"), ("10.3.0", "int8", "none"), ("11.4.0", "int8", "same_compute_capability")],
)
def test_loader_builds_exactly_like_the_build_step(rendered_loader, tmp_path, version, precision, hardware):
    _, loader = rendered_loader
    config = make_config(precision, hardware=hardware, version_compatible=version.startswith("11"))
    step_trt, loader_trt = fake_tensorrt(version), fake_tensorrt(version)
    assert engine_builder.build_engine(step_trt, tmp_path / "m.onnx", config, b"c") == loader.build_engine(
        loader_trt, tmp_path / "m.onnx", config, b"c"
    )
    assert step_trt.calls == loader_trt.calls


def test_loader_is_python38_code(rendered_loader):
    path, _ = rendered_loader
    ast.parse(path.read_text(), feature_version=(3, 8))


def test_loader_keeps_built_engines_outside_the_verified_folder(rendered_loader, tmp_path, monkeypatch):
    _, loader = rendered_loader
    monkeypatch.delenv(loader.ENGINE_CACHE_ENV, raising=False)
    loose = tmp_path / "demo-orin-1.0.0"
    assert loader.engine_cache_dir(loose) == tmp_path / "demo-orin-1.0.0.tensorrt"
    (tmp_path / "root" / "versions" / "1.0.0").mkdir(parents=True)
    assert (
        loader.engine_cache_dir(tmp_path / "root" / "versions" / "1.0.0")
        == tmp_path / "root" / "tensorrt-cache"
    )
    staged = tmp_path / "root" / "staging" / "stage-x" / "demo-orin-1.0.0"
    staged.mkdir(parents=True)
    assert loader.engine_cache_dir(staged) == tmp_path / "root" / "tensorrt-cache"
    monkeypatch.setenv(loader.ENGINE_CACHE_ENV, str(tmp_path / "elsewhere"))
    assert loader.engine_cache_dir(loose) == tmp_path / "elsewhere"


def test_loader_without_tensorrt_says_what_to_install(rendered_loader, tmp_path, monkeypatch):
    _, loader = rendered_loader
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import fails as on a host without TensorRT
    with pytest.raises(loader.RuntimeUnavailable, match="TensorRT is not installed"):
        loader.runtime_load(tmp_path, {"artifacts": []}, {})


# ------------------------------------------------------------------ the build step's decisions
def _build(tmp_path, monkeypatch, trt, found_gpus, hardware="none"):
    """Run tensorrt.build with the tensorrt double installed and the GPU probe answering
    `found_gpus` (a double too: this host has no GPU)."""
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setattr(gpu_probe, "gpus", lambda: found_gpus)
    config = tmp_path / "builder_config.json"
    config.write_text(json.dumps(make_config("fp16", hardware=hardware)))
    out = tmp_path / "out"
    params = {"device": "a10", "compute_capability": "8.6", "tensorrt_versions": ["10", "11"]}
    return run_step("tensorrt.build", out, {"model": tmp_path / "m.onnx", "config": config}, params), out


def test_build_defers_for_a_tensorrt_version_the_device_does_not_run(tmp_path, monkeypatch):
    with pytest.raises(Deferred, match=r"this host has TensorRT 8\.6\.1, device 'a10' runs 10, 11"):
        _build(tmp_path, monkeypatch, fake_tensorrt("8.6.1"), [gpu_probe.Gpu(0, "NVIDIA A10", "8.6")])


def test_build_defers_without_a_gpu_of_the_device_class(tmp_path, monkeypatch):
    with pytest.raises(
        Deferred, match=r"no GPU of compute capability 8\.6 here \(found: NVIDIA H100 \(9\.0\)\)"
    ):
        _build(tmp_path, monkeypatch, fake_tensorrt("10.15.1"), [gpu_probe.Gpu(0, "NVIDIA H100", "9.0")])


def test_build_writes_engine_and_timing_cache(tmp_path, monkeypatch):
    meta, out = _build(
        tmp_path, monkeypatch, fake_tensorrt("10.15.1"), [gpu_probe.Gpu(0, "NVIDIA A10", "8.6")]
    )
    assert (out / "model.engine").read_bytes() == b"ENGINE"
    assert (out / "timing.cache").read_bytes() == b"+timed"
    assert meta["tensorrt_version"] == "10.15.1"
    assert meta["timing_cache_key"] == {"compute_capability": "8.6", "tensorrt_version": "10.15.1"}


def test_ampere_plus_engines_build_on_any_ampere_gpu(tmp_path, monkeypatch):
    meta, _ = _build(
        tmp_path,
        monkeypatch,
        fake_tensorrt("10.15.1"),
        [gpu_probe.Gpu(0, "NVIDIA H100", "9.0")],
        hardware="ampere_plus",
    )
    assert meta["built_on"]["compute_capability"] == "9.0"


def test_build_failure_is_a_step_failure(tmp_path, monkeypatch):
    with pytest.raises(StepFailed, match="Unsupported operator FancyOp"):
        _build(
            tmp_path,
            monkeypatch,
            fake_tensorrt("10.15.1", parse_ok=False),
            [gpu_probe.Gpu(0, "NVIDIA A10", "8.6")],
        )


def test_gpu_probe_runs_on_this_host():
    """Real ctypes probe: returns a list on any host (empty without an NVIDIA driver)."""
    found = gpu_probe.gpus()
    assert isinstance(found, list)
    assert all(g.compute_capability.count(".") == 1 for g in found)
