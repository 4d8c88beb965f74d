"""Staged rollout on the device (issue 18): `loader.py install --canary`, automatic rollback on
errors, `promote`, and the offline telemetry printed by `loader.py metrics`.

The candidates are tiny real ONNX models run by onnxruntime; the faulty one returns NaN for the
inputs whose first value is below -0.8416, which are 20% of standard-normal inputs."""

from __future__ import annotations

import importlib.util
import json
import os
import time

import numpy as np
import pytest

from bundle_helpers import make_selftest, make_spec, run_loader
from edgebuild.bundle import write_bundle


def faulty_model(path, healthy):
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load(str(healthy))
    graph = model.graph
    graph.output[0].name = "y_ok"
    for node in graph.node:
        node.output[:] = ["y_ok" if out == "y" else out for out in node.output]
    graph.initializer.extend(
        [
            helper.make_tensor("k", TensorProto.FLOAT, [1], [0.8416]),
            helper.make_tensor("starts", TensorProto.INT64, [1], [0]),
            helper.make_tensor("ends", TensorProto.INT64, [1], [1]),
            helper.make_tensor("axes", TensorProto.INT64, [1], [1]),
        ]
    )
    graph.node.extend(
        [
            helper.make_node("Slice", ["x", "starts", "ends", "axes"], ["x0"]),
            helper.make_node("Add", ["x0", "k"], ["shifted"]),
            helper.make_node("Sqrt", ["shifted"], ["root"]),  # NaN below -k
            helper.make_node("Div", ["root", "root"], ["one"]),
            helper.make_node("Mul", ["y_ok", "one"], ["y"]),
        ]
    )
    graph.output[0].name = "y"
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def retrained_model(path, healthy):
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(healthy))
    for init in model.graph.initializer:
        init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * np.float32(1.001), init.name))
    onnx.save(model, str(path))


@pytest.fixture(scope="module")
def releases(work, keypair, tmp_path_factory):
    out = tmp_path_factory.mktemp("canary")
    faulty_model(out / "faulty.onnx", work / "tiny.onnx")
    retrained_model(out / "retrained.onnx", work / "tiny.onnx")
    made = {"1.0.0": write_bundle(make_spec(work), out, keypair[0])}
    for version, name in (("1.1.0", "faulty"), ("1.2.0", "retrained")):
        make_selftest(out / f"{name}.onnx", out / f"{name}-selftest.npz")
        spec = make_spec(
            work,
            version=version,
            artifacts={"model.onnx": out / f"{name}.onnx"},
            selftest=out / f"{name}-selftest.npz",
        )
        made[version] = write_bundle(spec, out, keypair[0])
    return made


def signed_deployment(folder, key, **rollback):
    doc = {
        "expires": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600)),
        "targets": {"cpu-fp32": {"rollback": rollback}},
    }
    path = folder / "deployment.json"
    path.write_bytes(json.dumps(doc).encode())
    (folder / "deployment.json.sig").write_bytes(key.sign(path.read_bytes()))
    return path


def loader_module(root):
    spec = importlib.util.spec_from_file_location(f"canary_loader_{id(root)}", root / "active" / "loader.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def serve(root, calls, seed=0):
    """Run `calls` predictions through the root as an application would; returns the model."""
    model = loader_module(root).open_root(root, seed=seed)
    rng = np.random.default_rng(seed)
    for _ in range(calls):
        outputs = model.predict({"x": rng.standard_normal((1, 4)).astype(np.float32)})
        assert np.isfinite(outputs["y"]).all(), "a failing candidate's output reached the caller"
        if model.rolled_back:
            break
    model.close()
    return model


def test_a_failing_canary_is_rolled_back_and_a_healthy_one_promoted(releases, keypair, tmp_path):
    root, key = tmp_path / "device", str(keypair[1])
    loader = lambda: root / "active" / "loader.py"  # noqa: E731  (the active version's own loader)
    first = run_loader(
        _extracted_loader(releases["1.0.0"], tmp_path),
        "install",
        str(releases["1.0.0"]),
        "--root",
        str(root),
        "--key",
        key,
    )
    assert first.returncode == 0, first.stdout + first.stderr

    policy = signed_deployment(
        tmp_path,
        keypair[0],
        max_error_rate=0.05,
        min_predictions=100,
        max_p95_latency_ratio=20,
        min_agreement=0.9,
    )
    bad = run_loader(
        loader(),
        "install",
        str(releases["1.1.0"]),
        "--root",
        str(root),
        "--key",
        key,
        "--canary",
        "0.5",
        "--deployment",
        str(policy),
    )
    assert bad.returncode == 0, bad.stdout + bad.stderr
    assert "candidate: 1.1.0" in run_loader(loader(), "status", "--root", str(root)).stdout

    model = serve(root, 1000)
    assert model.rolled_back and "error rate" in model.rolled_back
    assert model.totals["candidate"][0] == 100  # judged once the window was full, not later
    assert "rolled back canary 1.1.0: error rate" in (root / "canary.log").read_text()
    assert not os.path.lexists(root / "candidate") and sorted(os.listdir(root / "versions")) == ["1.0.0"]

    good = run_loader(
        loader(),
        "install",
        str(releases["1.2.0"]),
        "--root",
        str(root),
        "--key",
        key,
        "--canary",
        "0.5",
        "--deployment",
        str(policy),
    )
    assert good.returncode == 0, good.stdout + good.stderr
    healthy = serve(root, 400)
    assert healthy.rolled_back is None and healthy.totals["candidate"][0] > 100
    promoted = run_loader(loader(), "promote", "--root", str(root))
    assert promoted.returncode == 0, promoted.stdout + promoted.stderr
    status = run_loader(loader(), "status", "--root", str(root)).stdout
    assert "active: 1.2.0" in status and "previous: 1.0.0" in status and "candidate" not in status

    metrics = run_loader(loader(), "metrics", "--root", str(root)).stdout
    assert 'edgebuild_predictions_total{version="1.2.0",role="candidate"}' in metrics
    failed = [
        line
        for line in metrics.splitlines()
        if line.startswith('edgebuild_prediction_errors_total{version="1.1.0",role="candidate"}')
    ]
    assert failed and int(failed[0].split()[-1]) > 5
    assert 'edgebuild_latency_ms_bucket{version="1.0.0",role="active",le="+Inf"}' in metrics


def test_telemetry_stays_bounded(releases, keypair, tmp_path):
    root = tmp_path / "device"
    done = run_loader(
        _extracted_loader(releases["1.0.0"], tmp_path),
        "install",
        str(releases["1.0.0"]),
        "--root",
        str(root),
        "--key",
        str(keypair[1]),
    )
    assert done.returncode == 0, done.stderr
    module = loader_module(root)
    for _ in range(4000):
        module.append_telemetry(
            root,
            {
                "t": 0,
                "role": "active",
                "version": "1.0.0",
                "manifest_sha256": "0" * 64,
                "calls": 1,
                "errors": 0,
                "compared": 0,
                "agreed": 0,
                "latency_sum_ms": 1.0,
                "latency_buckets": [0] * 15,
                "staleness_s": 5,
            },
        )
    files = sorted((root / "telemetry").iterdir())
    assert [f.name for f in files] == ["telemetry.jsonl", "telemetry.jsonl.1"]
    assert all(f.stat().st_size <= module.TELEMETRY_MAX_BYTES + 1024 for f in files)


def _extracted_loader(bundle, tmp_path):
    import tarfile

    dest = tmp_path / "unpacked"
    if not dest.exists():
        with tarfile.open(bundle) as archive:
            archive.extractall(dest, filter="data")
    return next(dest.iterdir()) / "loader.py"
