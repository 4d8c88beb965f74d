"""edgebuild/steps/tflite/unroll_lstm.py: an ONNX LSTM unrolled into per-step elementary ops
computes what onnxruntime's LSTM computes (every output, every supported form), and an LSTM it
cannot unroll is left alone. The conversion that needed it (onnx2tf's LSTM gives wrong outputs) is
checked end to end in test_tflite_lstm_converts_exactly."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgebuild.steps.tflite.unroll_lstm import unroll_lstms

T, B, I, H = 5, 2, 3, 4


def lstm_model(direction="forward", layout=0, bias=True, states=False, outputs=("Y", "Yh", "Yc"), **attrs):
    rng = np.random.default_rng(7)
    d = 2 if direction == "bidirectional" else 1
    inits = [
        numpy_helper.from_array(rng.normal(0, 0.5, (d, 4 * H, I)).astype(np.float32), "W"),
        numpy_helper.from_array(rng.normal(0, 0.5, (d, 4 * H, H)).astype(np.float32), "R"),
    ]
    ins = ["x", "W", "R", "B" if bias else ""]
    if bias:
        inits.append(numpy_helper.from_array(rng.normal(0, 0.5, (d, 8 * H)).astype(np.float32), "B"))
    graph_inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [B, T, I] if layout else [T, B, I])]
    if states:
        ins += ["", "h0", "c0"]
        state = [B, d, H] if layout else [d, B, H]
        graph_inputs += [helper.make_tensor_value_info(n, TensorProto.FLOAT, state) for n in ("h0", "c0")]
    outs = [o if o in outputs else "" for o in ("Y", "Yh", "Yc")]
    while outs and not outs[-1]:
        outs.pop()
    node = helper.make_node(
        "LSTM", ins, outs, "lstm", hidden_size=H, direction=direction, layout=layout, **attrs
    )
    graph = helper.make_graph(
        [node],
        "lstm",
        graph_inputs,
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])


def run(model, feeds):
    import onnxruntime as ort

    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, feeds
    )


@pytest.mark.parametrize(
    "form",
    [
        {},
        {"direction": "reverse"},
        {"direction": "bidirectional"},
        {"direction": "bidirectional", "states": True},
        {"bias": False, "states": True},
        {"outputs": ("Yh",)},
    ],
    ids=[
        "forward",
        "reverse",
        "bidirectional",
        "bidirectional-states",
        "no-bias-states",
        "only-Yh",
    ],
)
def test_unrolled_lstm_matches_onnxruntime(form):
    model = lstm_model(**form)
    rng = np.random.default_rng(1)
    feeds = {"x": rng.normal(0, 1, [B, T, I] if form.get("layout") else [T, B, I]).astype(np.float32)}
    if form.get("states"):
        d = 2 if form.get("direction") == "bidirectional" else 1
        shape = [B, d, H] if form.get("layout") else [d, B, H]
        feeds |= {n: rng.normal(0, 0.5, shape).astype(np.float32) for n in ("h0", "c0")}
    expected = run(model, feeds)
    unrolled = onnx.ModelProto()
    unrolled.CopyFrom(model)
    assert unroll_lstms(unrolled) == 1
    assert "LSTM" not in {n.op_type for n in unrolled.graph.node}
    for want, got in zip(expected, run(unrolled, feeds)):
        assert want.shape == got.shape
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_unsupported_lstms_are_left_alone():
    unsupported = (
        lstm_model(clip=1.0),
        lstm_model(activations=["Sigmoid", "Relu", "Tanh"]),
        lstm_model(layout=1),
    )
    for model in unsupported:
        assert unroll_lstms(model) == 0 and [n.op_type for n in model.graph.node] == ["LSTM"]


def test_tflite_lstm_converts_exactly(tmp_path):
    """Through the CLI with the real onnx2tf and LiteRT: a forward LSTM with constant initial
    states, which onnx2tf's own LSTM conversion got wrong (cosine -0.55, measured), now builds in
    fp32 and int8 within the output gates."""
    from conftest import run_cli

    model = lstm_model(bias=True)
    rng = np.random.default_rng(3)
    for name in ("h0", "c0"):  # constant initial states
        model.graph.initializer.append(
            numpy_helper.from_array(rng.normal(0, 0.5, (1, B, H)).astype(np.float32), name)
        )
    node = model.graph.node[0]
    node.input.extend(["", "h0", "c0"])
    del model.graph.output[:]
    model.graph.output.extend(
        [
            helper.make_tensor_value_info("Yh", TensorProto.FLOAT, [1, B, H]),
            helper.make_tensor_value_info("Yc", TensorProto.FLOAT, [1, B, H]),
        ]
    )
    del node.output[0]
    node.output.insert(0, "")
    (tmp_path / "models").mkdir()
    onnx.save(model, str(tmp_path / "models" / "lstm.onnx"))
    data = rng.normal(0, 1, (16 * T, B, I)).astype(np.float32)  # 16 samples of [T, B, I]
    np.savez(tmp_path / "data.npz", x=data)
    (tmp_path / "targets.toml").write_text(
        '[project]\nname = "lstm"\nversion = "1.0.0"\n\n[models.lstm]\nsource = "models/lstm.onnx"\n'
        'calibration = "data.npz"\nevaluation = "data.npz"\n\n'
        '[targets.fp32]\nmodel = "lstm"\nrecipe = "tflite"\n\n'
        '[targets.int8]\nmodel = "lstm"\nrecipe = "tflite"\nprecision = "int8"\n'
    )
    result = run_cli(tmp_path, "build", "--json")
    targets = result.json["targets"]
    for name in ("fp32", "int8"):
        assert targets[name]["status"] == "built", targets[name]["reason"]
    fp32 = targets["fp32"]["metrics"]["outputs"]
    assert min(o["cosine_mean"] for o in fp32.values()) > 0.9999
