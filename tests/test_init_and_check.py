"""A model is all a user needs to start (issue 16), through the real CLI: `init` writes a
targets.toml from the model, `check` needs only the sources (missing data becomes a note, a
target's own mistake is that target's problem), the quick `check MODEL --recipe`, verification
without evaluation data (`not measured`, failing under --strict), Paddle-style -1 dims, and the
root cause of a blocked step."""

from __future__ import annotations

import json
import shutil
import sys
import tarfile
import tomllib
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import REPO, run_cli

ONLY_SOURCES = """
[project]
name = "p"
version = "0.1.0"

[models.digits]
source = "models/digits.onnx"
{extra}
"""


def _project(tmp_path: Path, text: str, extra_model: str = "") -> Path:
    project = tmp_path / "p"
    (project / "models").mkdir(parents=True)
    shutil.copyfile(REPO / "models" / "digits.onnx", project / "models" / "digits.onnx")
    (project / "targets.toml").write_text(ONLY_SOURCES.format(extra=extra_model) + text)
    return project


def _target(name: str, recipe: str, **settings) -> str:
    lines = [f"\n[targets.{name}]", 'model = "digits"', f'recipe = "{recipe}"']
    lines += [f"{k} = {json.dumps(v)}" for k, v in settings.items()]
    return "\n".join(lines) + "\n"


# --- init ----------------------------------------------------------------------------------------


def test_init_on_the_demo_cnn_and_the_tiny_llama(tmp_path):
    project = tmp_path / "p"
    project.mkdir()
    shutil.copyfile(REPO / "models" / "digits.onnx", project / "digits.onnx")
    shutil.copytree(REPO / "models" / "tiny-llama", project / "tiny-llama")
    result = run_cli(project, "init", str(project / "digits.onnx"), str(project / "tiny-llama"), "-j", "2")
    assert result.rc == 0, result.stderr
    text = (project / "targets.toml").read_text()
    data = tomllib.loads(text)
    model = data["models"]["digits"]
    assert model["source"] == "digits.onnx"
    assert model["input_shapes"] == {"input": [1, 1, 8, 8]}  # batch fixed to 1, the rest from the model
    assert '# calibration = "data/digits_calibration.npz"' in text  # data keys, commented, with the format
    assert "input: float32 [100, 1, 8, 8]" in text
    recipes = {t["recipe"] for t in data["targets"].values()}
    assert recipes == {"onnxruntime", "tflite", "edgetpu", "coreml", "tensorrt", "gguf"}
    assert data["targets"]["tiny-llama-q4"] == {
        "model": "tiny-llama",
        "recipe": "gguf",
        "quantization": "Q4_K_M",
    }
    assert text.count("\n# check: ") == 6  # each target says what check found

    # it refuses to overwrite, and changes nothing
    again = run_cli(project, "init", str(project / "digits.onnx"))
    assert again.rc == 2 and "already exists" in again.stderr and "Traceback" not in again.stderr
    assert (project / "targets.toml").read_text() == text

    # what init wrote checks without any data: notes, exit 0
    check = run_cli(project, "check", "--json", "-j", "2")
    assert check.rc == 0, check.stdout + check.stderr
    reports = check.json["targets"]
    assert all(r["status"] == "ok" for r in reports.values()), reports


def test_init_right_before_build(tmp_path):
    """`build` after `init` builds what needs no data and says per int8 target how to add calibration data."""
    project = tmp_path / "p"
    project.mkdir()
    shutil.copyfile(REPO / "models" / "digits.onnx", project / "digits.onnx")
    assert run_cli(project, "init", "digits.onnx", "--device", "cpu", "--device", "coral-usb").rc == 0
    names = set(tomllib.loads((project / "targets.toml").read_text())["targets"])
    assert names == {"cpu-onnxruntime", "cpu-tflite", "coral-usb"}  # one model: no model prefix
    result = run_cli(project, "build", "cpu-onnxruntime", "coral-usb", "--json")
    assert result.rc == 1, result.stderr
    targets = result.json["targets"]
    assert targets["cpu-onnxruntime"]["status"] == "built"
    coral = targets["coral-usb"]
    assert coral["status"] == "failed" and coral["failed_step"] == "convert"
    assert "needs calibration data" in coral["reason"] and "calibration = " in coral["reason"]


def test_init_on_a_real_model_with_dynamic_dims(tmp_path):
    """A third-party Paddle export (dim_value -1 batch, unnamed dynamic H and W) from the corpus."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import corpus
    except ImportError:
        pytest.skip("benchmarks/corpus.py is not in this checkout")
    finally:
        sys.path.pop(0)
    try:
        source = corpus.fetch("ppocr-mobile-cls")
    except corpus.CorpusUnavailable as exc:
        pytest.skip(f"real model not downloadable here: {exc}")
    project = tmp_path / "p"
    project.mkdir()
    shutil.copyfile(source, project / "cls.onnx")
    result = run_cli(project, "init", "cls.onnx", "--device", "cpu", "--device", "jetson-orin-nano")
    assert result.rc == 0, result.stderr
    text = (project / "targets.toml").read_text()
    model = tomllib.loads(text)["models"]["cls"]
    assert model["input_shapes"] == {"x": [1, 3, 224, 224]}  # never 1 for H/W ...
    assert "224, a guess" in text and "GUESSED" in text  # ... and said to be a guess
    assert "onnxruntime runs the model with these shapes (outputs [1, 2])" in text
    targets = tomllib.loads(text)["targets"]
    assert targets["cpu-onnxruntime"]["recipe"] == "onnxruntime"
    assert targets["jetson-orin-nano"]["device"] == "jetson-orin-nano"
    assert run_cli(project, "check", "--target", "jetson-orin-nano").rc == 0


def test_init_unknown_device_is_a_usage_error(tmp_path):
    shutil.copyfile(REPO / "models" / "digits.onnx", tmp_path / "digits.onnx")
    result = run_cli(tmp_path, "init", "digits.onnx", "--device", "coral-usbb")
    assert (
        result.rc == 2
        and "unknown device 'coral-usbb'" in result.stderr
        and "did you mean 'coral-usb'" in result.stderr
    )
    assert not (tmp_path / "targets.toml").exists()


# --- check -----------------------------------------------------------------------------------


def test_check_needs_only_sources_for_every_recipe(tmp_path):
    text = (
        _target("cpu", "onnxruntime")
        + _target("cpu-int8", "onnxruntime", precision="int8")
        + _target("tfl", "tflite")
        + _target("coral", "edgetpu")
        + _target("iphone", "coreml")
        + _target("orin", "tensorrt", device="jetson-orin-nano", precision="int8")
        + '\n[models.llama]\nsource = "tiny-llama"\n\n[targets.q8]\nmodel = "llama"\nrecipe = "gguf"\n'
        'quantization = "Q8_0"\n'
    )
    project = _project(tmp_path, text, "input_shapes = { input = [1, 1, 8, 8] }")
    shutil.copytree(REPO / "models" / "tiny-llama", project / "tiny-llama")
    result = run_cli(project, "check", "--json", "-j", "2")
    assert result.rc == 0, result.stdout + result.stderr
    reports = result.json["targets"]
    assert set(reports) == {"cpu", "cpu-int8", "tfl", "coral", "iphone", "orin", "q8"}
    assert all(r["status"] == "ok" for r in reports.values()), {n: r["status"] for n, r in reports.items()}
    for name in ("cpu-int8", "orin"):
        assert any(n.startswith("needs calibration data") for n in reports[name]["notes"]), name
    assert 'int8_mode = "dynamic"' in reports["cpu-int8"]["notes"][0]
    assert "notes" not in reports["cpu"]
    human = run_cli(project, "check", "--target", "orin")
    assert human.rc == 0 and "needs calibration data (step 'lower')" in human.stdout


def test_tensorrt_without_profile_is_that_targets_problem(tmp_path):
    """The demo CNN's batch is dynamic; with no input_shapes and no profile only the TensorRT target fails."""
    text = _target("cpu", "onnxruntime") + _target("t4", "tensorrt", device="t4", precision="fp16")
    project = _project(tmp_path, text)
    result = run_cli(project, "check", "--json")
    assert result.rc == 1, result.stderr
    reports = result.json["targets"]
    assert reports["t4"]["status"] == "problem"
    assert any("profiles: input 'input' has dynamic dimensions [0]" in p for p in reports["t4"]["problems"])
    assert reports["cpu"]["status"] == "ok" and reports["cpu"]["coverage"]["rows"]


def test_blocked_step_names_its_root_cause(tmp_path):
    project = _project(tmp_path, _target("cpu", "onnxruntime"), "input_shapes = { nope = [1, 1, 8, 8] }")
    check = run_cli(project, "check", "--json")
    assert check.rc == 1
    report = check.json["targets"]["cpu"]
    assert report["status"] == "blocked"
    assert report["summary"].startswith("not run: cpu/check failed: input_shapes names 'nope'")
    human = run_cli(project, "check")
    assert "input_shapes names 'nope', which is not a model input" in human.stdout
    build = run_cli(project, "build", "--json")
    assert build.rc == 1 and "input_shapes names 'nope'" in build.json["targets"]["cpu"]["reason"]


def test_quick_check_without_a_project(tmp_path):
    home, elsewhere = tmp_path / "home", tmp_path / "empty"
    elsewhere.mkdir()
    model = tmp_path / "m" / "digits.onnx"
    model.parent.mkdir()
    shutil.copyfile(REPO / "models" / "digits.onnx", model)
    env = {"EDGEBUILD_HOME": str(home)}
    result = run_cli(
        elsewhere,
        "check",
        str(model),
        "--recipe",
        "edgetpu",
        "--device",
        "coral-usb",
        "--input-shape",
        "input=1,1,8,8",
        "--json",
        env=env,
    )
    assert result.rc == 0, result.stderr
    report = result.json["targets"]["edgetpu-coral-usb"]
    assert report["status"] == "ok" and report["coverage"]["accelerated_share"] == 1.0
    assert sorted(p.name for p in model.parent.iterdir()) == ["digits.onnx"]  # nothing written beside it
    assert list(elsewhere.iterdir()) == []
    # a dynamic batch without --input-shape is filled (and said to be) rather than refused
    guessed = run_cli(elsewhere, "check", str(model), "--recipe", "tflite", env=env)
    assert guessed.rc == 0 and "checked as [1, 1, 8, 8]" in guessed.stderr
    for args, message in (
        (["--recipe", "edgetpuu"], "did you mean 'edgetpu'"),
        ([], "needs --recipe NAME"),
        (["--recipe", "tflite", "--input-shape", "nope=1,2"], "the model has no input 'nope'"),
        (["--recipe", "tflite", "--input-shape", "input=1,x"], "positive integers"),
    ):
        bad = run_cli(elsewhere, "check", str(model), *args, env=env)
        assert bad.rc == 2 and message in bad.stderr and "Traceback" not in bad.stderr, bad.stderr
    (tmp_path / "garbage.onnx").write_bytes(b"not a model")
    bad = run_cli(elsewhere, "check", str(tmp_path / "garbage.onnx"), "--recipe", "tflite", env=env)
    assert (
        bad.rc == 2 and "garbage.onnx: cannot be read as ONNX" in bad.stderr and "Traceback" not in bad.stderr
    )


def test_check_convert_runs_the_cached_conversion_build_reuses(tmp_path):
    project = _project(
        tmp_path,
        _target("cpu", "onnxruntime", latency_runs=20) + _target("cpu-int8", "onnxruntime", precision="int8"),
        "input_shapes = { input = [1, 1, 8, 8] }",
    )
    result = run_cli(project, "check", "--convert", "--json")
    assert result.rc == 0, result.stderr
    conversion = result.json["targets"]["cpu"]["conversion"]
    assert conversion == {"verdict": "converts", "step": "fp32", "reason": None}
    int8 = result.json["targets"]["cpu-int8"]["conversion"]
    assert int8["verdict"] == "needs data" and int8["step"] == "int8" and "calibration" in int8["reason"]
    dry = run_cli(project, "build", "cpu", "-n", "--json").json["steps"]
    would = {row["label"].split("/")[1] for row in dry if row["would_run"]}
    assert would == {"verify-fp32"}  # the conversion itself is cached


# --- verification without evaluation data; -1 dims ---------------------------------------------


def test_verify_without_evaluation_data_is_not_measured_and_fails_strict(tmp_path):
    project = _project(tmp_path, _target("cpu", "onnxruntime", latency_runs=20))
    result = run_cli(project, "bundle", "--target", "cpu", "--json")
    assert result.rc == 0, result.stderr
    target = result.json["targets"]["cpu"]
    assert target["status"] == "built"
    assert target["not_measured"] == {"max_accuracy_drop": "no labels", "max_class_drop": "no labels"}
    assert target["metrics"]["cosine_min"] > 0.999  # numerics were still compared
    with tarfile.open(project / target["bundle"]) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("/manifest.json"))
        manifest = json.load(tar.extractfile(member))
    assert manifest["metrics"]["not_measured"]["max_accuracy_drop"] == "no labels"
    human = run_cli(project, "build")
    assert "not measured: no labels (max_accuracy_drop, max_class_drop" in human.stderr
    strict = run_cli(project, "build", "--strict", "--json")
    assert strict.rc == 1 and strict.json["ok"] is False
    assert run_cli(project, "report").rc == 0
    assert "not measured: no labels" in (project / "build" / "report.html").read_text()


def _paddle_style_model(path: Path, dims=(-1, 3, -1, -1), metadata: dict | None = None) -> None:
    """A small CNN whose input and output write dim_value -1 for dynamic axes, as paddle2onnx does."""
    import numpy as np

    rng = np.random.default_rng(0)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(dims))
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [-1, 4])
    weights = [
        numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "w"),
        numpy_helper.from_array(rng.standard_normal((4, 8)).astype(np.float32), "fc"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "fc"], ["y"], transB=1),
    ]
    model = helper.make_model(
        helper.make_graph(nodes, "paddle_like", [x], [y], weights),
        opset_imports=[helper.make_opsetid("", 13)],
    )
    helper.set_model_props(model, metadata or {})
    onnx.save(model, str(path))


def test_paddle_minus_one_dims_are_dynamic(tmp_path):
    """-1 dims read as dynamic: the model builds for onnxruntime with and without input_shapes, and
    TensorRT's check takes them as dynamic (fixed by input_shapes, or that target's problem)."""
    project = tmp_path / "p"
    (project / "models").mkdir(parents=True)
    _paddle_style_model(project / "models" / "paddle.onnx")
    (project / "targets.toml").write_text(
        '[project]\nname = "p"\nversion = "0.1.0"\n[models.m]\nsource = "models/paddle.onnx"\n'
        'input_shapes = { x = [1, 3, 32, 32] }\n[models.free]\nsource = "models/paddle.onnx"\n'
        '[targets.cpu]\nmodel = "m"\nrecipe = "onnxruntime"\nlatency_runs = 20\n'
        '[targets.cpu-dynamic]\nmodel = "free"\nrecipe = "onnxruntime"\nlatency_runs = 20\n'
        '[targets.t4]\nmodel = "m"\nrecipe = "tensorrt"\ndevice = "t4"\n'
        '[targets.t4-free]\nmodel = "free"\nrecipe = "tensorrt"\ndevice = "t4"\n'
    )
    reports = run_cli(project, "check", "--json").json["targets"]
    assert reports["t4"]["status"] == "ok", reports["t4"]
    assert reports["t4-free"]["status"] == "problem"
    assert any("dynamic dimensions [0, 2, 3]" in p for p in reports["t4-free"]["problems"])
    assert reports["cpu"]["status"] == reports["cpu-dynamic"]["status"] == "ok"

    result = run_cli(project, "build", "cpu", "cpu-dynamic", "--json")
    assert result.rc == 0, result.stdout + result.stderr
    for name in ("cpu", "cpu-dynamic"):
        assert result.json["targets"][name]["status"] == "built"
    from edgebuild.onnxinfo import describe_io

    assert describe_io(project / "models" / "paddle.onnx")["inputs"][0]["shape"] == [None, 3, None, None]
    built = describe_io(project / "build" / "cpu-dynamic" / "free_fp32.onnx")["inputs"][0]["shape"]
    assert built[1] == 3 and all(isinstance(d, str) for d in (built[0], built[2], built[3]))  # named, not -1


def test_init_takes_dynamic_sizes_from_the_model_metadata(tmp_path):
    _paddle_style_model(
        tmp_path / "det.onnx",
        dims=("batch", 3, "height", "width"),
        metadata={"imgsz": "[320, 256]", "batch": "1"},
    )
    result = run_cli(tmp_path, "init", "det.onnx", "--device", "cpu")
    assert result.rc == 0, result.stderr
    text = (tmp_path / "targets.toml").read_text()
    assert tomllib.loads(text)["models"]["det"]["input_shapes"] == {"x": [1, 3, 320, 256]}
    assert "320 from the model's metadata 'imgsz'" in text and "GUESSED" not in text


def test_a_guess_that_does_not_run_is_replaced_by_one_that_does(tmp_path):
    """A text-line model that only runs at 48x320 (its Reshape fixes H*W): the first guess, 224x224,
    fails in onnxruntime, so the next guesses are tried and the one that runs is taken, and said so."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, "h", "w"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    shape = numpy_helper.from_array(__import__("numpy").array([1, 3 * 48 * 320], dtype="int64"), "shape")
    nodes = [
        helper.make_node("Reshape", ["x", "shape"], ["flat"]),
        helper.make_node("ReduceSum", ["flat"], ["y"], keepdims=0),
    ]
    model = helper.make_model(
        helper.make_graph(nodes, "line", [x], [y], [shape]), opset_imports=[helper.make_opsetid("", 13)]
    )
    onnx.save(model, str(tmp_path / "line.onnx"))
    result = run_cli(
        tmp_path,
        "check",
        str(tmp_path / "line.onnx"),
        "--recipe",
        "onnxruntime",
        env={"EDGEBUILD_HOME": str(tmp_path / "home")},
    )
    assert result.rc == 0, result.stderr
    assert "checked as [1, 3, 48, 320]" in result.stderr
    assert "could not with the first guess x=[1, 3, 224, 224]" in result.stderr


def test_verification_uses_the_calibration_data_when_there_is_no_evaluation_data(tmp_path):
    project = _project(
        tmp_path, _target("cpu", "onnxruntime", latency_runs=20), 'calibration = "data/calibration.npz"'
    )
    (project / "data").mkdir()
    shutil.copyfile(REPO / "data" / "digits_calibration.npz", project / "data" / "calibration.npz")
    result = run_cli(project, "build", "--json")
    assert result.rc == 0, result.stderr
    target = result.json["targets"]["cpu"]
    assert target["metrics"]["data"].startswith("calibration data calibration.npz (")
    assert target["not_measured"]["max_accuracy_drop"] == "no labels"
