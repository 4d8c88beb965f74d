"""The TFLite route's measured rules: node features, rule matching, the shipped table, the
derivation script's learner, and what edgebuild's tflite.convert refuses at the graph's edges."""

import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgebuild.coverage import check_model
from edgebuild.coverage import tflite
from edgebuild.coverage.graph_walk import walk_model
from edgebuild.coverage.node_features import features, matches, parse_condition
from edgebuild.coverage.partition import RESTRICTION, SUPPORTED, UNSUPPORTED
from edgebuild.coverage.tables import load_table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import derive_tflite_rules as derivation  # noqa: E402


def _conv_model(path: Path, constant_weights: bool) -> Path:
    w = numpy_helper.from_array(np.ones((2, 1, 3, 3), np.float32), "w")
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 5, 5])]
    if not constant_weights:
        inputs.append(helper.make_tensor_value_info("w", TensorProto.FLOAT, [2, 1, 3, 3]))
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], "conv", kernel_shape=[3, 3])],
        "g",
        inputs,
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 3, 3])],
        initializer=[w] if constant_weights else [],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def _node(tmp_path, op="Add", a=(1, 3, 4, 4), b=(4,), **attrs):
    graph = helper.make_graph(
        [helper.make_node(op, ["a", "b"], ["y"], "n", **attrs)],
        "g",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, list(a)),
            helper.make_tensor_value_info("b", TensorProto.INT64, list(b)),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    path = tmp_path / "n.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return walk_model(path).nodes[0]


def test_features_describe_types_ranks_constness_and_attributes(tmp_path):
    f = features(_node(tmp_path, "Add"))
    assert f["in0.dtype"] == "float32" and f["in0.family"] == "float" and f["in1.family"] == "int"
    assert f["in0.rank"] == "4" and f["in1.rank"] == "1" and f["in0.const"] == "no"
    assert f["has.int64"] == "yes" and f["in.ranks_differ"] == "yes" and f["inputs"] == "2"
    f = features(_node(tmp_path, "Concat", a=(2, 2), b=(2, 2), axis=-1))
    assert f["attr.axis"] == "-1" and "in.ranks_differ" not in f


def test_conditions_parse_and_match():
    cond = parse_condition("in0.dtype=int64 & attr.mode=cubic")
    assert cond == [("in0.dtype", "int64"), ("attr.mode", "cubic")]
    assert matches({"in0.dtype": "int64", "attr.mode": "cubic", "x": "y"}, cond)
    assert not matches({"in0.dtype": "int64"}, cond)
    assert parse_condition("*") == [] and matches({}, [])
    with pytest.raises(ValueError, match="key=value"):
        parse_condition("in0.dtype")


def test_first_matching_rule_decides(tmp_path):
    node = _node(tmp_path, "Add")
    rows = [
        {
            "op": "Add",
            "when": "in1.family=int",
            "verdict": "fails",
            "evidence": "0/3",
            "reason": "int add breaks",
        },
        {"op": "Add", "when": "*", "verdict": "converts", "evidence": "9/9", "reason": ""},
    ]
    rules = tflite.rules_from_rows(rows)
    status, reason = tflite.measured_verdict(node, rules)
    assert status == RESTRICTION and "int add breaks" in reason and "0/3" in reason
    status, reason = tflite.measured_verdict(node, tflite.rules_from_rows(rows[1:]))
    assert status == SUPPORTED and "9/9" in reason
    status, _ = tflite.measured_verdict(node, tflite.rules_from_rows([dict(rows[1], verdict="fails")]))
    assert status == UNSUPPORTED
    assert tflite.measured_verdict(node, tflite.rules_from_rows([dict(rows[0], op="Sub")])) is None


def test_shipped_table_is_well_formed():
    table = load_table(tflite.MEASURED)
    assert "onnx2tf" in table.source_line() and len(table.rows) > 100
    known_prefixes = ("in", "out", "has.", "attr.")
    for row in table.rows:
        assert row["verdict"] in ("converts", "fails"), row
        worked, total = (int(x) for x in row["evidence"].split("/"))
        assert 0 <= worked <= total and total > 0, row
        for key, _ in parse_condition(row["when"]):
            assert key.startswith(known_prefixes), row
        if row["verdict"] == "fails":
            assert row["reason"], row


def test_measured_rules_hold_only_where_they_were_measured(tmp_path):
    """The node tests pass Conv weights as graph inputs and onnx2tf fails on them; a Conv with
    constant weights (every real CNN) is outside that measurement and stays supported."""
    variable = check_model(_conv_model(tmp_path / "var.onnx", constant_weights=False), "tflite", {})
    assert variable.nodes[0].status == RESTRICTION and "measured" in variable.nodes[0].reason
    constant = check_model(_conv_model(tmp_path / "const.onnx", constant_weights=True), "tflite", {})
    assert constant.ok and constant.nodes[0].status == SUPPORTED


@pytest.mark.parametrize(
    "inputs, message",
    [
        ([helper.make_tensor_value_info("x", TensorProto.FLOAT, [])], "scalar"),
        ([helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3])], "static"),
        ([helper.make_tensor_value_info("x", TensorProto.FLOAT, [0, 3])], "non-empty"),
        ([helper.make_tensor_value_info("x", TensorProto.STRING, [2])], "string"),
    ],
)
def test_graph_edges_the_convert_step_refuses(tmp_path, inputs, message):
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"], "id")],
        "g",
        inputs,
        [helper.make_tensor_value_info("y", inputs[0].type.tensor_type.elem_type, None)],
    )
    path = tmp_path / "edge.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    report = check_model(path, "tflite", {})
    assert not report.ok and any(message in i.message for i in report.errors)
    if message == "static":
        assert check_model(path, "tflite", {"input_shapes": {"x": [2, 3]}}).ok


def _example(op, works, **feats):
    return derivation.Example(op, {"in0.const": "no", **feats}, works, "" if works else "convert: boom")


def test_learner_takes_the_largest_clean_condition_first():
    examples = (
        [_example("Op", False, **{"in0.family": "int", "attr.mode": "a"}) for _ in range(3)]
        + [_example("Op", True, **{"in0.family": "float", "attr.mode": "a"}) for _ in range(4)]
        + [_example("Op", False, **{"in0.family": "float", "attr.mode": "b"})]
    )
    rows = derivation.derive(examples)
    assert [(r["when"], r["verdict"], r["evidence"]) for r in rows] == [
        ("in0.family=int & in0.const=no", "fails", "0/3"),  # the largest clean group first
        ("attr.mode=a & in0.const=no", "converts", "4/4"),
        ("in0.const=no & in0.family=float", "fails", "0/1"),  # the rest, scoped to what it saw
    ]
    assert all(r["reason"] == "boom" for r in rows if r["verdict"] == "fails")


def test_learned_rules_reproduce_their_examples():
    examples = [_example("Op", False, **{"attr.k": str(i)}) for i in range(2)] + [
        _example("Op", True, **{"attr.k": str(i)}) for i in range(2, 6)
    ]
    rules = derivation.rules_for(derivation.derive(examples))
    for e in examples:
        rule = next(r for r in rules["Op"] if matches(e.feats, r["condition"]))
        assert (rule["verdict"] == "converts") == e.works
