"""`edgebuild check` and `edgebuild graph` end to end through the CLI."""

from __future__ import annotations

import json

import onnx
from onnx import TensorProto, helper

from conftest import ort_demo_toml, run_cli, write_demo


def test_check_reports_every_target(demo_copy):
    result = run_cli(demo_copy, "check", "--json")
    assert result.rc == 0, result.stderr
    targets = result.json["targets"]
    assert set(targets) == {"cpu-fp32", "cpu-fp16", "cpu-int8"}
    for report in targets.values():
        assert report["status"] == "ok"
        ops = {row["op"]: row for row in report["coverage"]["rows"]}
        assert ops["Conv"]["count"] == 3 and ops["Conv"]["status"] == "supported"


def _model_with_unknown_op(path):
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    nodes = [
        helper.make_node("Relu", ["input"], ["a"], name="relu"),
        helper.make_node("FancyActivation", ["a"], ["y"], name="fancy_1", domain="com.example"),
    ]
    graph = helper.make_graph(nodes, "g", [x], [y])
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)]
    )
    onnx.save(model, str(path))


def test_policy_broken_stops_build_before_conversion(tmp_path):
    text = """
[project]
name = "p"
version = "0.1.0"
[models.m]
source = "m.onnx"
[targets.cpu]
model = "m"
recipe = "onnxruntime"
"""
    project = tmp_path / "p"
    project.mkdir()
    (project / "targets.toml").write_text(text)
    _model_with_unknown_op(project / "m.onnx")
    check = run_cli(project, "check", "--json")
    assert check.rc == 1
    report = check.json["targets"]["cpu"]
    assert report["status"] == "policy-broken"
    assert "fancy_1" in json.dumps(report["coverage"]["rows"])
    assert "com.example" in report["summary"] or "FancyActivation" in report["summary"]

    build = run_cli(project, "build", "--json")
    assert build.rc == 1
    target = build.json["targets"]["cpu"]
    assert target["failed_step"] in ("check", "coverage")
    assert not (project / "build" / "cpu").exists()  # nothing was converted


def test_graph_formats_share_nodes(tmp_path):
    project = write_demo(tmp_path / "p", ort_demo_toml())
    data = json.loads(run_cli(project, "graph", "--format", "json").stdout)
    shared = [n for n in data["nodes"] if n["step"] == "onnx.simplify"]
    assert len(shared) == 1 and shared[0]["targets"] == ["cpu-fp16", "cpu-fp32", "cpu-int8"]
    dot = run_cli(project, "graph", "--format", "dot").stdout
    assert dot.startswith("digraph edgebuild {") and '"models/digits.onnx"' in dot
    mermaid = run_cli(project, "graph", "--format", "mermaid").stdout
    assert mermaid.startswith("flowchart LR") and "ort.quantize" in mermaid


def test_device_precision_mistake_fails_at_check_time(tmp_path):
    """A device/precision mistake is that target's problem (exit 1); the other targets are still checked."""
    text = (
        ort_demo_toml() + '\n[targets.nano]\nmodel = "digits"\nrecipe = "tensorrt"\ndevice = "jetson-nano"\n'
        'precision = "int8"\n'
    )
    project = write_demo(tmp_path / "p", text)
    result = run_cli(project, "check")
    assert result.rc == 1, result.stderr
    assert "precision: device 'jetson-nano' has no INT8 support" in result.stdout
    assert "Traceback" not in result.stderr
    reports = run_cli(project, "check", "--json").json["targets"]
    assert reports["nano"]["status"] == "problem"
    assert {reports[t]["status"] for t in ("cpu-fp32", "cpu-fp16", "cpu-int8")} == {"ok"}


def test_tensorrt_target_is_deferred_and_strict_fails(tmp_path):
    text = (
        ort_demo_toml()
        + '\n[targets.orin]\nmodel = "digits"\nrecipe = "tensorrt"\ndevice = "jetson-orin-nano"\n'
        'precision = "fp16"\n'
    )
    project = write_demo(tmp_path / "p", text)
    result = run_cli(project, "bundle", "--target", "orin", "--json")
    assert result.rc == 0, result.stderr
    target = result.json["targets"]["orin"]
    assert target["status"] == "deferred" and "TensorRT" in target["reason"]
    assert target["bundle"].endswith("demo-orin-1.0.0.tar.gz")
    assert "build/orin/builder_config.json" in target["artifacts"]
    strict = run_cli(project, "build", "orin", "--json", "--strict")
    assert strict.rc == 1 and strict.json["targets"]["orin"]["status"] == "deferred"
