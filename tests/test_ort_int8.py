"""onnxruntime int8 through the CLI (issue 20): an opset-11 model gets valid per-channel int8, the
latency gate fails or ships fp32, a broken output is named, the search records its candidates;
NaN and misshaped data are refused naming the file (issue 14 items 10, 11)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import run_cli
from onnx_factory import outlier_channel_cnn

PROJECT = """
[project]
name = "int8"
version = "1.0.0"

[models.cnn11]
source = "models/cnn11.onnx"
calibration = "data/cnn_calib.npz"
evaluation = "data/cnn_eval.npz"

[models.twoheads]
source = "models/twoheads.onnx"
calibration = "data/heads_calib.npz"
evaluation = "data/heads_eval.npz"

[models.nan_eval]
source = "models/cnn11.onnx"
evaluation = "data/cnn_nan.npz"

[models.bad_rank]
source = "models/cnn11.onnx"
evaluation = "data/cnn_bad_rank.npz"

[models.sqrt]
source = "models/sqrt.onnx"
evaluation = "data/heads_eval.npz"

[models.outlier]
source = "models/outlier.onnx"
calibration = "data/cnn_calib.npz"
evaluation = "data/cnn_eval.npz"
"""


def _target(name: str, model: str, precision: str = "int8", **settings) -> str:
    text = f'\n[targets.{name}]\nmodel = "{model}"\nrecipe = "onnxruntime"\nprecision = "{precision}"\nlatency_runs = 20\n'
    for key, value in settings.items():
        text += f"{key} = {str(value).lower() if isinstance(value, bool) else repr(value).replace(chr(39), chr(34))}\n"
    return text


TARGETS = (
    _target("opset11", "cnn11", int8_search=False, max_latency_ratio=False)
    + _target("searched", "cnn11", max_latency_ratio=False)
    + _target("too-slow", "cnn11", int8_search=False, max_latency_ratio=0.01)
    + _target("ships-fp32", "cnn11", int8_search=False, max_latency_ratio=0.01, on_slower="fp32")
    + _target("heads", "twoheads", int8_search=False, max_latency_ratio=False)
    + _target("heads-searched", "twoheads", max_latency_ratio=False)
    + _target("arm", "cnn11", device="cpu-arm64", max_latency_ratio=0.01)
    + _target("nan", "nan_eval", precision="fp32")
    + _target("rank", "bad_rank", precision="fp32")
    + _target("sqrt", "sqrt", precision="fp32")
    + _target("dynamic", "cnn11", precision="int8-dynamic", max_latency_ratio=False)
    + _target("dynamic-old-spelling", "cnn11", int8_mode="dynamic", max_latency_ratio=False)
    + _target("fallback", "outlier", max_latency_ratio=False)
    + _target("outlier-plain", "outlier", int8_search=False, max_latency_ratio=False)
)


def _cnn_opset11(path: Path) -> None:
    """Conv -> Relu -> GlobalAveragePool -> Flatten -> Gemm, opset 11: per-channel QDQ needs 13."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(1)
    inits = [
        numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "w1"),
        numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "b1"),
        numpy_helper.from_array(rng.standard_normal((8, 4)).astype(np.float32), "w2"),
        numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "b2"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "w2", "b2"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "cnn11",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 16, 16])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 4])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)], ir_version=7)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _two_heads(path: Path) -> None:
    """Outputs `features` = x @ W and `delta` = x @ W - x @ (W + 1e-4 R): int8 weights cannot keep a
    difference far below their step, so int8 breaks `delta` and keeps `features`."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(2)
    w = rng.standard_normal((16, 16)).astype(np.float32)
    inits = [
        numpy_helper.from_array(w, "wa"),
        numpy_helper.from_array((w + 1e-4 * rng.standard_normal((16, 16))).astype(np.float32), "wb"),
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "wa"], ["features"]),
        helper.make_node("MatMul", ["x", "wb"], ["b"]),
        helper.make_node("Sub", ["features", "b"], ["delta"]),
    ]
    graph = helper.make_graph(
        nodes,
        "heads",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 16])],
        [
            helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 16]),
            helper.make_tensor_value_info("delta", TensorProto.FLOAT, ["N", 16]),
        ],
        inits,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def _sqrt(path: Path) -> None:
    """sqrt of standard normal inputs: NaN for every negative value."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Sqrt", ["x"], ["y"])],
        "sqrt",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 16])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def write_project(root: Path, targets: str = TARGETS) -> Path:
    import numpy as np

    (root / "models").mkdir(parents=True)
    (root / "data").mkdir()
    _cnn_opset11(root / "models" / "cnn11.onnx")
    _two_heads(root / "models" / "twoheads.onnx")
    _sqrt(root / "models" / "sqrt.onnx")
    outlier_channel_cnn(root / "models" / "outlier.onnx")
    rng = np.random.default_rng(0)
    images = rng.standard_normal((48, 3, 16, 16)).astype(np.float32)
    np.savez(root / "data" / "cnn_calib.npz", x=images[:32])
    np.savez(root / "data" / "cnn_eval.npz", x=images[32:])
    nan = images[32:].copy()
    nan[3, 0, 0, 0] = np.nan
    np.savez(root / "data" / "cnn_nan.npz", x=nan)
    np.savez(root / "data" / "cnn_bad_rank.npz", x=images[32:, 0])  # (16, 16, 16): channel axis lost
    vectors = rng.standard_normal((96, 16)).astype(np.float32)
    np.savez(root / "data" / "heads_calib.npz", x=vectors[:64])
    np.savez(root / "data" / "heads_eval.npz", x=vectors[64:])
    (root / "targets.toml").write_text(PROJECT + targets)
    return root


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    project = write_project(tmp_path_factory.mktemp("int8") / "p")
    result = run_cli(project, "build", "--json", "-j", "2")
    assert result.rc == 1, result.stderr  # some targets fail on purpose
    return project, result.json


def test_opset11_model_gets_loading_per_channel_int8(built):
    import onnx
    import onnxruntime as ort

    project, doc = built
    target = doc["targets"]["opset11"]
    assert target["status"] == "built", target["reason"]
    int8 = target["metrics"]["int8"]
    assert "opset raised from 11 to 13" in int8["opset"]
    assert int8["options"]["per_channel"] is True and int8["shipped"] == "int8"
    artifact = project / target["artifacts"][0]
    model = onnx.load(str(artifact))
    dequant = [n for n in model.graph.node if n.op_type == "DequantizeLinear"]
    assert any(a.name == "axis" for n in dequant for a in n.attribute)  # per-channel weights
    ort.InferenceSession(str(artifact), providers=["CPUExecutionProvider"])  # loads
    assert target["metrics"]["latency"]["ratio_to_fp32"] > 0  # timed against fp32


def test_slower_int8_fails_the_latency_gate(built):
    _, doc = built
    target = doc["targets"]["too-slow"]
    assert target["status"] == "failed" and target["failed_step"] == "int8"
    assert (
        "int8 is slower than fp32" in target["reason"]
        and "breaks gate max_latency_ratio = 0.01" in target["reason"]
    )


def test_slower_int8_ships_fp32_and_says_so(built):
    import onnx

    project, doc = built
    target = doc["targets"]["ships-fp32"]
    assert target["status"] == "built", target["reason"]
    assert target["metrics"]["int8"]["shipped"] == "fp32"
    ops = {n.op_type for n in onnx.load(str(project / target["artifacts"][0])).graph.node}
    assert not ops & {"QuantizeLinear", "DequantizeLinear", "QLinearConv"}
    human = run_cli(project, "build", "ships-fp32")
    assert "shipped the fp32 model instead of int8" in human.stderr


def test_int8_breaking_one_output_fails_naming_it(built):
    _, doc = built
    target = doc["targets"]["heads"]
    assert target["status"] == "failed" and target["failed_step"] == "verify-int8"
    assert "on output 'delta' breaks gate min_output_cosine = 0.98" in target["reason"]
    outputs = target["metrics"]["outputs"]
    assert outputs["features"]["cosine_mean"] > 0.98 > outputs["delta"]["cosine_mean"]


def test_failing_int8_is_diagnosed_weights_or_activations(built):
    """The 16-bit activation probe: the outlier model's loss is its 8-bit activations (one channel
    sets a per-tensor range that crushes the rest), two-heads' is its int8 weights (a difference far
    below their step), and each failure message says which."""
    _, doc = built
    outlier = doc["targets"]["outlier-plain"]
    assert outlier["status"] == "failed" and outlier["failed_step"] == "verify-int8"
    assert "int8 diagnosis: with 16-bit activations the worst output agrees at cosine" in outlier["reason"]
    assert "the 8-bit activations lose it; the accuracy fallback" in outlier["reason"]
    assert outlier["metrics"]["int8"]["diagnosis"]["a16_passes"] is True
    heads = doc["targets"]["heads"]
    assert "still outside the gates: the int8 weights lose it too" in heads["reason"]
    built_ok = doc["targets"]["opset11"]
    assert "diagnosis" not in built_ok["metrics"]["int8"]  # only a failing int8 is probed


def test_search_records_every_candidate(built):
    _, doc = built
    target = doc["targets"]["searched"]
    assert target["status"] == "built", target["reason"]
    search = target["metrics"]["int8_search"]
    assert len(search["candidates"]) >= 3
    chosen = search["candidates"][search["chosen"]]
    assert chosen["options"] == target["metrics"]["int8"]["chosen"]
    assert all("ratio_to_fp32" in c for c in search["candidates"] if "error" not in c)
    labels = {c["options"] for c in search["candidates"]}
    assert any("uint8 activations" in x for x in labels) and any(
        x.startswith("int8 activations") for x in labels
    )


def test_nan_inputs_and_outputs_fail_naming_the_file(built):
    _, doc = built
    nan = doc["targets"]["nan"]
    assert nan["status"] == "failed"
    assert "evaluation data cnn_nan.npz: array 'x' holds NaN or inf values (1 of 16 samples)" in nan["reason"]
    sqrt = doc["targets"]["sqrt"]
    assert sqrt["status"] == "failed" and "heads_eval.npz" in sqrt["reason"]
    assert "output 'y' is not finite (NaN or inf)" in sqrt["reason"]


def test_misshaped_evaluation_data_is_named(built):
    _, doc = built
    reason = doc["targets"]["rank"]["reason"]
    assert (
        "evaluation data cnn_bad_rank.npz: array 'x' has shape (16, 16, 16); model input 'x' expects "
        "(N, 3, 16, 16)" in reason
    )
    assert "Traceback" not in reason


def test_failed_steps_that_ran_count_as_run(built):
    project, _ = built
    again = run_cli(project, "build", "--json", "too-slow").json  # everything cached but the failing step
    assert again["steps"]["failed"] == 1 and again["steps"]["run"] == 1


def test_unknown_exclude_op_type_is_a_config_error(tmp_path):
    project = write_project(tmp_path / "p", _target("typo", "cnn11", exclude_op_types=["conv"]))
    result = run_cli(project, "build")
    assert result.rc == 2
    assert "exclude_op_types: 'conv' is not an ONNX op type (did you mean 'Conv'?)" in result.stderr
    assert "Traceback" not in result.stderr


def test_int8_dynamic_and_its_old_spelling(built):
    import onnx

    project, doc = built
    for name in ("dynamic", "dynamic-old-spelling"):
        target = doc["targets"][name]
        assert target["status"] == "built", target["reason"]
        assert target["metrics"]["int8"]["precision"] == "int8-dynamic"
        ops = {n.op_type for n in onnx.load(str(project / target["artifacts"][0])).graph.node}
        assert "DynamicQuantizeLinear" in ops and "QuantizeLinear" not in ops
    assert doc["targets"]["dynamic"]["artifacts"] == ["build/dynamic/cnn11_int8-dynamic.onnx"]


def test_search_tries_other_calibrations_when_nothing_passes(built):
    _, doc = built
    target = doc["targets"]["heads-searched"]
    assert target["status"] == "failed" and "on output 'delta'" in target["reason"]
    tried = [c["options"] for c in target["metrics"]["int8_search"]["candidates"]]
    assert any(o.endswith("percentile") for o in tried) and any(o.endswith("entropy") for o in tried)
    assert "no candidate passes the gates" in target["metrics"]["int8"]["reason"]


def test_accuracy_fallback_keeps_the_worst_quantized_nodes_float(built):
    import onnx

    project, doc = built
    target = doc["targets"]["fallback"]
    assert target["status"] == "built", target["reason"]
    search = target["metrics"]["int8_search"]
    # every searched configuration breaks `mask` (conv2's outlier channel sets its activation's range)
    searched = [c for c in search["candidates"] if "node(s) in float" not in c["options"]]
    assert searched and all(any("output 'mask'" in m for m in c["misses"]) for c in searched)
    int8 = target["metrics"]["int8"]
    fallback = int8["accuracy_fallback"]
    assert int8["reason"].startswith("accuracy fallback: passes the gates with 3 node(s) in float")
    assert fallback["rounds"][0]["failing_outputs"] == ["mask"]
    assert fallback["rounds"][0]["causes"][0]["tensor"] == "r2"  # the crushed activation first
    assert sorted(int8["options"]["exclude_nodes"]) == ["conv2", "conv3", "relu2"]
    assert fallback["rounds"][-1]["excluded_nodes"] == int8["options"]["exclude_nodes"]
    assert target["metrics"]["outputs"]["mask"]["cosine_mean"] >= 0.98  # verification agrees
    assert target["metrics"]["latency"]["ratio_to_fp32"] > 0  # still timed against fp32
    model = onnx.load(str(project / target["artifacts"][0]))
    assert {n.name for n in model.graph.node if n.op_type == "Conv"} >= {"conv2", "conv3"}  # float Convs
    assert any(n.op_type == "QuantizeLinear" for n in model.graph.node)  # the rest is int8


def test_accuracy_fallback_that_cannot_help_still_names_the_output(built):
    _, doc = built
    target = doc["targets"]["heads-searched"]
    assert target["status"] == "failed" and "on output 'delta'" in target["reason"]
    fallback = target["metrics"]["int8"]["accuracy_fallback"]
    assert fallback["budget_nodes"] == 1  # 20% of the two MatMuls, at least one
    assert fallback["rounds"][0]["failing_outputs"] == ["delta"]
    assert fallback["result"].startswith("budget spent")
    assert "no candidate passes the gates" in target["metrics"]["int8"]["reason"]


def test_accuracy_fallback_flag_is_checked_at_parse(tmp_path):
    project = write_project(tmp_path / "p", _target("typo", "cnn11", int8_accuracy_fallback="yes"))
    result = run_cli(project, "build")
    assert result.rc == 2
    assert "targets.typo.int8_accuracy_fallback: must be bool, got 'yes'" in result.stderr


def test_device_defaults_where_the_host_cannot_measure(built):
    import platform

    _, doc = built
    target = doc["targets"]["arm"]
    if platform.machine().lower() in ("arm64", "aarch64"):
        pytest.skip("this host is arm64: it can measure the cpu-arm64 device")
    # int8 activations (arm64's kernels), no search, and no latency gate (0.01 would fail anywhere)
    assert target["status"] == "built", target["reason"]
    int8 = target["metrics"]["int8"]
    assert int8["options"]["activation_type"] == "int8" and int8["search"] is False
    assert "device is arm64, this build host is x86-64" in int8["defaults"]


def test_a_gate_that_is_not_a_number_is_a_config_error(tmp_path):
    project = write_project(
        tmp_path / "p", _target("typo", "cnn11", precision="fp16", min_output_cosine="high")
    )
    result = run_cli(project, "build")
    assert result.rc == 2
    assert "min_output_cosine = 'high': a gate is a number, false or \"auto\"" in result.stderr


def test_end_of_build_table_on_a_terminal(built):
    import io

    from edgebuild.summary import print_human

    _, doc = built

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    pipe, tty = io.StringIO(), Terminal()
    print_human(doc, pipe)
    print_human(doc, tty)
    assert "worst output (cosine)" not in pipe.getvalue()
    rows = {
        line.split()[0]: line
        for line in tty.getvalue().splitlines()
        if line.startswith(("opset11 ", "heads "))
    }
    assert "features (" not in rows["heads"] and "delta (" in rows["heads"]  # the worst output is named
    ratio = doc["targets"]["opset11"]["metrics"]["latency"]["ratio_to_fp32"]
    assert f"{ratio:.2f}" in rows["opset11"]
