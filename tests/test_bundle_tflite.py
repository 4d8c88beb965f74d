"""The TFLite loader with the real LiteRT interpreter on a tiny full-int8 model (written directly
as a flatbuffer, so no TensorFlow is needed): float inputs are quantized, outputs dequantized, and
without libedgetpu an Edge TPU target falls back to the CPU with a loud warning."""

from __future__ import annotations

import tarfile

import numpy as np
import pytest

from edgebuild.bundle import write_bundle
from bundle_helpers import INT8_ADD_CONSTANT as CONSTANT
from bundle_helpers import make_int8_add_model, make_spec, run_loader

litert = pytest.importorskip("ai_edge_litert", reason="the tflite extra (ai-edge-litert) is not installed")


@pytest.fixture(scope="module")
def tflite_bundle(work, keypair, tmp_path_factory):
    out = tmp_path_factory.mktemp("tflite")
    make_int8_add_model(out / "model_int8.tflite")
    x = np.array([[1.0, 1.0, -1.0, 0.0]], np.float32)
    np.savez(
        out / "selftest.npz",
        **{"input.x": x, "expected.y": x + CONSTANT, "atol": np.array(0.1), "rtol": np.array(0.0)},
    )
    spec = make_spec(
        work,
        target="coral",
        device="coral-usb",
        recipe="edgetpu",
        runtime="tflite",
        artifacts={"model_int8.tflite": out / "model_int8.tflite"},
        selftest=out / "selftest.npz",
        status="deferred",
        remaining="run edgetpu_compiler on model_int8.tflite",
        runtime_options={"delegate": "edgetpu"},
    )
    archive = write_bundle(spec, out / "bundles", keypair[0])
    with tarfile.open(archive) as tar:
        tar.extractall(out, filter="data")
    return out / archive.name[: -len(".tar.gz")]


def test_edgetpu_bundle_falls_back_to_cpu_loudly_and_passes(tflite_bundle, keypair):
    result = run_loader(tflite_bundle / "loader.py", "selftest", "--key", str(keypair[1]))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING: Edge TPU NOT USED" in result.stderr
    assert "deferred: run edgetpu_compiler" in result.stdout
    assert "ok   y:" in result.stdout


def test_quantized_io_is_converted(tflite_bundle):
    import importlib.util

    spec = importlib.util.spec_from_file_location("tflite_loader", tflite_bundle / "loader.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.load(tflite_bundle)
    y = model.predict({"x": np.array([[0.2, -0.4, 0.0, 1.0]], np.float32)})["y"]
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, [[0.7, -1.4, 1.5, -1.0]], atol=0.051)
    raw = model.predict({"x": np.array([[20, 20, -20, 0]], np.int8)})["y"]  # already-quantized input
    np.testing.assert_allclose(raw, [[1.5, 0.0, 0.5, -2.0]], atol=1e-6)
