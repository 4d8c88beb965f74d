"""The TFLite / Edge TPU coverage gate never blocks on a guess (issue 15).

A restriction predicted from single-op node tests is advice: shown as predicted, with its
evidence, while the build goes on and the real converter decides. Only certainties stop a target:
an op with no converter at all, string or sequence I/O, dynamic shapes without input_shapes, and
the target's own share policy.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
from conftest import run_cli
from onnx import TensorProto, helper, numpy_helper

from edgebuild.coverage import check_model, evaluate_policy
from edgebuild.coverage.partition import SUPPORTED, UNSUPPORTED


def _relu6_cnn(path, dynamic: bool = False, exp_first: bool = False):
    """Conv -> Clip(0, 6) with constant bounds (a PyTorch ReLU6 export) -> Split in two along the
    channels -> Add -> Flatten -> Gemm. The shipped measured table says Clip 'fails' (0/2 node
    tests, which passed the bounds as graph inputs: out of scope for constant bounds) and Split
    'fails' (0/14 node tests, output differs): a prediction, which the real converter overrules."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.standard_normal((4, 1, 3, 3)).astype(np.float32), "w"),
        numpy_helper.from_array(np.array(0.0, np.float32), "lo"),
        numpy_helper.from_array(np.array(6.0, np.float32), "hi"),
        numpy_helper.from_array(rng.standard_normal((3, 2 * 6 * 6)).astype(np.float32), "fc"),
        numpy_helper.from_array(np.zeros(3, np.float32), "fcb"),
    ]
    nodes = [helper.make_node("Exp", ["x"], ["e"], name="exp")] if exp_first else []
    nodes += [
        helper.make_node("Conv", ["e" if exp_first else "x", "w"], ["c"], name="conv"),
        helper.make_node("Clip", ["c", "lo", "hi"], ["r"], name="relu6"),
        helper.make_node("Split", ["r"], ["s0", "s1"], name="halves", axis=1),
        helper.make_node("Add", ["s0", "s1"], ["sum"], name="add"),
        helper.make_node("Flatten", ["sum"], ["f"], name="flat"),
        helper.make_node("Gemm", ["f", "fc", "fcb"], ["y"], name="fc", transB=1),
    ]
    batch = "N" if dynamic else 1
    graph = helper.make_graph(
        nodes,
        "relu6",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 1, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 3])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _custom_op_model(path):
    nodes = [
        helper.make_node("Relu", ["x"], ["a"], name="relu"),
        helper.make_node("FusedGemm", ["a", "a"], ["y"], name="fused0", domain="com.microsoft"),
    ]
    graph = helper.make_graph(
        nodes,
        "ms",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 2])],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("com.microsoft", 1)]
    )
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_predicted_restriction_is_advice_not_a_stop(tmp_path):
    report = check_model(_relu6_cnn(tmp_path / "m.onnx"), "tflite", {"precision": "int8"})
    split = next(n for n in report.nodes if n.op == "Split")
    assert split.status != SUPPORTED and not split.certain  # the shipped table predicts a failure...
    assert "measured" in split.reason  # ...with its evidence
    assert report.advice == [split] and report.blocking == []
    assert evaluate_policy(report, {"fallback": "warn"}) == []  # ...which stops nothing
    data = report.to_json()
    assert data["advice"] == 1 and data["blocking"] == 0
    assert next(n for n in data["nodes"] if n["op"] == "Split")["predicted"] is True
    assert "predicted, not a stop" in report.summary_line()


def test_node_test_rules_stay_in_their_scope(tmp_path):
    """The Clip rule was measured with the bounds as graph inputs; a ReLU6 with constant bounds is
    outside it and falls back to the converter list (supported)."""
    report = check_model(_relu6_cnn(tmp_path / "m.onnx"), "tflite", {})
    assert next(n for n in report.nodes if n.op == "Clip").status == SUPPORTED


def test_edgetpu_share_is_not_cut_by_a_guess(tmp_path):
    """On the Edge TPU route the predicted conversion problem is a note; the node keeps its
    predicted placement (SPLIT maps), so the share a policy may gate on is not lowered by a guess."""
    report = check_model(_relu6_cnn(tmp_path / "m.onnx"), "edgetpu", {"precision": "int8"})
    split = next(n for n in report.nodes if n.op == "Split")
    assert split.status == SUPPORTED and report.blocking == [] and report.accelerated_share == 1.0
    assert any("predicted conversion problem" in note and "Split" in note for note in report.notes)
    assert evaluate_policy(report, {"fallback": "error", "min_accelerated_share": 1.0}) == []


def test_no_converter_at_all_is_certain_and_blocks(tmp_path):
    report = check_model(_custom_op_model(tmp_path / "ms.onnx"), "tflite", {})
    fused = next(n for n in report.nodes if n.node == "fused0")
    assert fused.status == UNSUPPORTED and fused.certain
    problems = evaluate_policy(report, {"fallback": "warn"})
    assert len(problems) == 1 and "fused0" in problems[0]


def test_dynamic_input_without_shapes_blocks_the_edgetpu(tmp_path):
    report = check_model(_relu6_cnn(tmp_path / "dyn.onnx", dynamic=True), "edgetpu", {"precision": "int8"})
    problems = evaluate_policy(report, {"fallback": "warn"})
    assert any("input 'x'" in p and "input_shapes" in p for p in problems)


def test_share_policy_still_gates(tmp_path):
    """The target's declared accelerator-share policy is the one prediction that may stop a build
    (Exp is no Edge TPU op: the compiler's single cut puts it and everything after it on the CPU)."""
    report = check_model(_relu6_cnn(tmp_path / "m.onnx", exp_first=True), "edgetpu", {"precision": "int8"})
    assert report.accelerated_share < 1.0
    problems = evaluate_policy(report, {"fallback": "warn", "min_accelerated_share": 1.0})
    assert len(problems) == 1 and "min_accelerated_share" in problems[0]


def test_build_goes_past_the_prediction_and_converts(tmp_path):
    """Through the CLI with the real converter: the Split the table flags converts and verifies."""
    project = tmp_path / "proj"
    (project / "models").mkdir(parents=True)
    _relu6_cnn(project / "models" / "relu6.onnx")
    rng = np.random.default_rng(1)
    np.savez(project / "eval.npz", x=rng.uniform(-1, 1, (16, 1, 8, 8)).astype(np.float32))
    (project / "targets.toml").write_text("""
[project]
name = "advice"
version = "1.0.0"

[models.relu6]
source = "models/relu6.onnx"
evaluation = "eval.npz"

[targets.tfl]
model = "relu6"
recipe = "tflite"
min_top1_agreement = 0.0
min_cosine = 0.999
""")
    result = run_cli(project, "build", "--json")
    assert result.rc == 0, result.stderr[-2000:]
    target = json.loads(result.stdout)["targets"]["tfl"]
    assert target["status"] == "built" and target["metrics"]["cosine_mean"] > 0.999
