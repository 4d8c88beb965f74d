"""The real engine build and the generated TensorRT loader. These run only where `tensorrt`
imports and an NVIDIA GPU is present (a user's GPU or Jetson build agent); everywhere else they
skip with that reason. No host in this workplace can run them (facts/tensorrt.md)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from edgebuild.steps.tensorrt.gpu_probe import gpus

try:
    import tensorrt as trt
except ImportError:
    trt = None

pytestmark = [
    pytest.mark.skipif(trt is None, reason="TensorRT is not installed on this host"),
    pytest.mark.skipif(trt is not None and not gpus(), reason="no NVIDIA GPU on this host"),
    pytest.mark.slow,
]


@pytest.fixture(scope="module")
def pipeline():
    """The CPU pipeline's helpers (tests/test_tensorrt_steps.py), loaded by path."""
    path = Path(__file__).with_name("test_tensorrt_steps.py")
    spec = importlib.util.spec_from_file_location("tensorrt_pipeline_helpers", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def device_params():
    gpu = gpus()[0]
    major_minor = ".".join(trt.__version__.split(".")[:2])
    return {
        "device": "local-gpu",
        "compute_capability": gpu.compute_capability,
        "tensorrt_versions": [major_minor],
        "device_platform": "discrete",
        "device_fp16": True,
        "device_int8": True,
    }


@pytest.fixture(scope="module", params=["fp16", "int8"])
def built(request, tmp_path_factory, pipeline, device_params):
    """Every step of the recipe, the engine included, for one precision (built once)."""
    import numpy as np

    precision, work = request.param, tmp_path_factory.mktemp(f"gpu-{request.param}")
    source = pipeline.small_cnn(work / "cnn.onnx")
    calibration = work / "calibration.npz"
    np.savez(calibration, input=np.random.default_rng(1).standard_normal((48, 1, 8, 8)).astype(np.float32))
    profile = pipeline.PROFILE
    pipeline.run_step(
        "tensorrt.prepare", work / "prepare", {"model": source, "calibration": calibration}, profiles=profile
    )
    prepared = work / "prepare" / "model.onnx"
    meta = pipeline.run_step(
        "tensorrt.quantize",
        work / "lower",
        {"model": prepared, "calibration": calibration},
        precision=precision,
        profiles=profile,
    )
    lowered = work / "lower" / "model.onnx"
    pipeline.run_step(
        "tensorrt.selftest",
        work / "selftest",
        {"model": prepared, "lowered": lowered, "calibration": calibration},
        precision=precision,
        profiles=profile,
    )
    pipeline.run_step(
        "tensorrt.config",
        work / "config",
        {"model": lowered},
        **device_params,
        precision=precision,
        workspace_mb=256,
        profiles=profile,
    )
    build_meta = pipeline.run_step(
        "tensorrt.build",
        work / "build",
        {"model": lowered, "config": work / "config" / "builder_config.json"},
        **device_params,
    )
    return {"work": work, "precision": precision, "io": meta["io"], "lowered": lowered, "build": build_meta}


def _bundle(built, with_engine: bool) -> Path:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from edgebuild.bundle.spec import BundleSpec
    from edgebuild.bundle.writer import write_bundle

    work = built["work"]
    artifacts = {"cnn.onnx": built["lowered"], "builder_config.json": work / "config" / "builder_config.json"}
    if with_engine:
        artifacts["cnn.engine"] = work / "build" / "model.engine"
    target = "gpu-engine" if with_engine else "gpu-deferred"
    spec = BundleSpec(
        project="demo",
        version="1.0.0",
        target=target,
        device="local-gpu",
        recipe="tensorrt",
        runtime="tensorrt",
        artifacts=artifacts,
        io=built["io"],
        selftest=work / "selftest" / "selftest.npz",
        status="built" if with_engine else "deferred",
    )
    archive = write_bundle(spec, work / "bundles", Ed25519PrivateKey.generate())
    with tarfile.open(archive) as tar:
        tar.extractall(work / target, filter="data")
    return work / target / spec.folder_name


def _selftest(folder: Path, cache: Path):
    env = dict(os.environ, EDGEBUILD_TENSORRT_CACHE=str(cache))
    return subprocess.run(
        [sys.executable, "loader.py", "selftest"], cwd=folder, env=env, capture_output=True, text=True
    )


def test_engine_and_timing_cache_are_built(built):
    build = built["work"] / "build"
    assert (build / "model.engine").stat().st_size > 0
    assert (build / "timing.cache").stat().st_size > 0
    assert built["build"]["tensorrt_version"] == trt.__version__


def test_loader_runs_the_bundled_engine_and_its_selftest(built):
    folder = _bundle(built, with_engine=True)
    cache = built["work"] / "cache-engine"
    done = _selftest(folder, cache)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "self-test passed" in done.stdout
    assert not cache.exists()  # the bundled engine loaded: nothing was built


def test_deferred_bundle_builds_on_first_run_and_reuses_the_engine(built):
    folder = _bundle(built, with_engine=False)
    cache = built["work"] / "cache-deferred"
    first = _selftest(folder, cache)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "building the TensorRT" in first.stderr
    engines = sorted(cache.glob("*.engine"))
    assert len(engines) == 1 and sorted(cache.glob("timing-*.cache"))
    stamp = engines[0].stat().st_mtime_ns
    second = _selftest(folder, cache)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "building the TensorRT" not in second.stderr
    assert engines[0].stat().st_mtime_ns == stamp
    config = json.loads((folder / "builder_config.json").read_text())
    assert config["precision"] == built["precision"]
