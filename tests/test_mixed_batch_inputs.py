"""A model whose inputs take different numbers of rows per run (a VAD fed a batch of 4 audio
windows and one recurrent state, as Silero VAD is in faster-whisper): calibration and evaluation
.npz hold samples x rows per input, and every onnxruntime and TFLite step feeds each input its own
rows. Before, the npz loader refused such data ("inputs have different sample counts") and the
TFLite verifier cut every input at the first input's batch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli

WINDOWS, WIDTH = 4, 16
PROJECT = """
[project]
name = "stateful"
version = "1.0.0"

[models.vad]
source = "models/vad.onnx"
calibration = "data/calib.npz"
evaluation = "data/eval.npz"
"""
TARGETS = {
    "ort-fp32": ("onnxruntime", "fp32", ""),
    "ort-int8": ("onnxruntime", "int8", "int8_search = false\nmax_latency_ratio = false\n"),
    "tflite-fp32": ("tflite", "fp32", ""),
    "tflite-int8": ("tflite", "int8", ""),
}


def _stateful_model(path: Path) -> None:
    """y = relu(x @ W + h) for 4 windows x [4, 16] and one state h [1, 16]; the next state is the
    mean of y over the windows, [1, 16]."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(3)
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["xw"]),
        helper.make_node("Add", ["xw", "h"], ["pre"]),
        helper.make_node("Relu", ["pre"], ["y"]),
        helper.make_node("ReduceMean", ["y"], ["h_next"], axes=[0], keepdims=1),
    ]
    graph = helper.make_graph(
        nodes,
        "vad",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [WINDOWS, WIDTH]),
            helper.make_tensor_value_info("h", TensorProto.FLOAT, [1, WIDTH]),
        ],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, [WINDOWS, WIDTH]),
            helper.make_tensor_value_info("h_next", TensorProto.FLOAT, [1, WIDTH]),
        ],
        [numpy_helper.from_array(rng.standard_normal((WIDTH, WIDTH)).astype(np.float32), "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _data(path: Path, samples: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    np.savez(
        path,
        x=rng.uniform(-1, 1, (samples * WINDOWS, WIDTH)).astype(np.float32),  # 4 rows per sample
        h=rng.uniform(-0.5, 0.5, (samples, WIDTH)).astype(np.float32),  # 1 row per sample
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("stateful") / "p"
    (root / "models").mkdir(parents=True)
    (root / "data").mkdir()
    _stateful_model(root / "models" / "vad.onnx")
    _data(root / "data" / "calib.npz", 16, 0)
    _data(root / "data" / "eval.npz", 8, 1)
    text = PROJECT
    for name, (recipe, precision, extra) in TARGETS.items():
        text += f'\n[targets.{name}]\nmodel = "vad"\nrecipe = "{recipe}"\nprecision = "{precision}"\n{extra}'
    (root / "targets.toml").write_text(text)
    result = run_cli(root, "build", "--json", "-j", "2")
    return root, result


@pytest.mark.parametrize("target", list(TARGETS))
def test_each_input_gets_its_own_rows(built, target):
    _, result = built
    doc = result.json["targets"][target]
    assert doc["status"] == "built", doc["reason"]


def test_verification_compared_every_sample_of_both_outputs(built):
    _, result = built
    ort = result.json["targets"]["ort-fp32"]["metrics"]
    assert ort["outputs"]["y"]["samples"] == 8 * WINDOWS and ort["outputs"]["h_next"]["samples"] == 8
    assert min(o["cosine_mean"] for o in ort["outputs"].values()) > 0.9999
    tflite = result.json["targets"]["tflite-fp32"]["metrics"]
    assert "8 samples" in tflite["data"] and tflite["cosine_mean"] > 0.9999


def test_a_sample_count_mismatch_still_names_both_inputs(tmp_path):
    """4 samples of x (16 rows) against 3 of h: refused, with the rows behind the count."""
    from edgebuild.evaldata import load_npz
    from edgebuild.steps.base import StepFailed

    np.savez(tmp_path / "bad.npz", x=np.zeros((16, WIDTH), np.float32), h=np.zeros((3, WIDTH), np.float32))
    specs = [{"name": "x", "shape": [WINDOWS, WIDTH]}, {"name": "h", "shape": [1, WIDTH]}]
    with pytest.raises(StepFailed, match=r"different sample counts 'x' 4 \(16 rows of 4\), 'h' 3"):
        load_npz(tmp_path / "bad.npz", ["x", "h"], "calibration", specs=specs)


def test_feeds_follow_each_inputs_rows():
    from edgebuild.evaldata import batches, feed_rows, sample_rows

    arrays = {"x": np.arange(12 * WIDTH).reshape(12, WIDTH), "h": np.arange(3 * WIDTH).reshape(3, WIDTH)}
    specs = [{"name": "x", "shape": [WINDOWS, WIDTH]}, {"name": "h", "shape": [1, WIDTH]}]
    rows = sample_rows(specs)
    assert rows == {"x": 4, "h": 1} and feed_rows(specs) == rows
    feeds = list(batches(arrays, ["x", "h"], rows))
    assert [f["x"].shape[0] for f in feeds] == [4, 4, 4] and [f["h"].shape[0] for f in feeds] == [1, 1, 1]
    assert np.array_equal(feeds[2]["x"], arrays["x"][8:12]) and np.array_equal(
        feeds[2]["h"], arrays["h"][2:3]
    )
    assert len(list(batches(arrays, ["x", "h"], rows, limit=8))) == 2  # limit counts the first input's rows
    dynamic = [{"name": "x", "shape": [None, WIDTH]}, {"name": "h", "shape": ["N", WIDTH]}]
    assert feed_rows(dynamic) is None and sample_rows(dynamic) == {"x": 1, "h": 1}
    assert [f["x"].shape[0] for f in batches(arrays, ["x"], None)] == [12]  # dynamic: all at once
    # an input with a dynamic leading dim in a fixed-batch model takes the model's batch
    assert sample_rows([{"name": "x", "shape": [2, WIDTH]}, {"name": "m", "shape": [None, 3]}]) == {
        "x": 2,
        "m": 2,
    }
