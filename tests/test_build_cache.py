"""Incremental builds end to end through the CLI: what reruns after which change."""

from __future__ import annotations

import os
import time

from conftest import ORT_TARGETS, run_cli


def ran_steps(result) -> int:
    return result.json["steps"]["run"]


def test_second_all_runs_nothing(demo_copy):
    result = run_cli(demo_copy, "all", "--json")
    assert result.rc == 0, result.stderr
    doc = result.json
    assert doc["steps"]["run"] == 0
    assert doc["steps"]["cached"] == doc["steps"]["total"] == 11  # check+simplify shared by the 3 targets
    assert {t["status"] for t in doc["targets"].values()} == {"cached"}
    for target in ORT_TARGETS:
        assert doc["targets"][target]["bundle"].endswith(f"demo-{target}-1.0.0.tar.gz")


def test_json_summary_shape(demo_copy):
    doc = run_cli(demo_copy, "build", "--json").json
    assert set(doc) >= {"ok", "edgebuild_version", "steps", "targets"}
    assert set(doc["steps"]) >= {"total", "run", "cached", "failed"}
    target = doc["targets"]["cpu-int8"]
    assert set(target) >= {"status", "recipe", "artifacts", "bundle", "reason"}
    assert target["artifacts"] == ["build/cpu-int8/digits_int8.onnx"]
    assert target["metrics"]["top1_agreement"] > 0.9


def test_touch_without_change_reruns_nothing(demo_copy):
    source = demo_copy / "models" / "digits.onnx"
    later = time.time() + 5
    os.utime(source, (later, later))
    result = run_cli(demo_copy, "build", "--json")
    assert ran_steps(result) == 0


def test_changed_source_reruns_exactly_downstream(demo_copy):
    import shutil

    import numpy as np
    import onnx
    from onnx import numpy_helper

    # a second model with the same bytes: its target shares every node with cpu-fp32 (content, not
    # names, decides what is the same work), so adding it runs nothing
    shutil.copyfile(demo_copy / "models" / "digits.onnx", demo_copy / "models" / "other.onnx")
    toml = demo_copy / "targets.toml"
    toml.write_text(
        toml.read_text() + '\n[models.other]\nsource = "models/other.onnx"\n'
        'evaluation = "data/digits_eval.npz"\ninput_shapes = { input = [1, 1, 8, 8] }\n\n[targets.other-fp32]\nmodel = "other"\n'
        'recipe = "onnxruntime"\nlatency_runs = 20\n'
    )
    first = run_cli(demo_copy, "build", "--json")
    assert ran_steps(first) == 0, first.stderr

    source = demo_copy / "models" / "digits.onnx"
    model = onnx.load(str(source))
    weight = model.graph.initializer[0]
    weight.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(weight) * np.float32(1.01), weight.name))
    onnx.save(model, str(source))
    dry = run_cli(demo_copy, "build", "-n")
    assert "input 'model' changed (models/digits.onnx)" in dry.stdout
    result = run_cli(demo_copy, "build", "--json")
    assert result.rc == 0, result.stderr
    assert ran_steps(result) == 11  # every node of the three digits targets
    assert result.json["targets"]["other-fp32"]["status"] == "cached"


def test_changed_calibration_reruns_only_int8(demo_copy):
    import numpy as np

    calib = demo_copy / "data" / "digits_calibration.npz"
    with np.load(calib) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["input"] = arrays["input"][:64]
    np.savez(calib, **arrays)
    result = run_cli(demo_copy, "build", "--json")
    assert ran_steps(result) == 2  # int8 quantize + its verification
    assert result.json["targets"]["cpu-int8"]["status"] == "built"
    assert result.json["targets"]["cpu-fp32"]["status"] == "cached"


def test_changed_parameter_reruns_only_that_target(demo_copy):
    toml = demo_copy / "targets.toml"
    toml.write_text(toml.read_text().replace('precision = "int8"', 'precision = "int8"\nper_channel = false'))
    dry = run_cli(demo_copy, "build", "-n")
    assert "parameter per_channel: True -> False" in dry.stdout
    assert "2 of 11 steps would run" in dry.stdout
    result = run_cli(demo_copy, "build", "--json")
    assert ran_steps(result) == 2
    statuses = {name: t["status"] for name, t in result.json["targets"].items()}
    assert statuses == {"cpu-fp32": "cached", "cpu-fp16": "cached", "cpu-int8": "built"}


def test_dry_run_runs_nothing_and_explains_toolchain_change(demo_copy):
    state = demo_copy / ".edgebuild" / "state" / "targets" / "cpu-fp32.json"
    text = state.read_text()
    import json

    data = json.loads(text)
    data["steps"]["check"]["parts"]["toolchain"]["onnx"] = "0.0.1"  # as if onnx was upgraded since
    # make the recorded key miss so the step would run, and its explanation names the version
    ac = demo_copy / ".edgebuild" / "cache" / "ac"
    key = data["steps"]["check"]["key"]
    (ac / key[:2] / key).unlink()
    state.write_text(json.dumps(data))
    dry = run_cli(demo_copy, "build", "-n", "cpu-fp32")
    assert dry.rc == 0
    assert "toolchain onnx: 0.0.1 ->" in dry.stdout
    assert not (ac / key[:2] / key).exists()  # a dry run builds nothing


def test_artifacts_equal_after_clean_cache_rebuild(demo_copy, built_demo):
    assert run_cli(demo_copy, "clean", "--cache").rc == 0
    assert not (demo_copy / "build").exists()
    result = run_cli(demo_copy, "build", "--json")
    assert result.rc == 0
    assert ran_steps(result) == 11
    for target, name in zip(ORT_TARGETS, ("digits_fp32.onnx", "digits_fp16.onnx", "digits_int8.onnx")):
        a = (demo_copy / "build" / target / name).read_bytes()
        b = (built_demo / "build" / target / name).read_bytes()
        assert a == b, f"{target} artifact differs between two clean builds"
