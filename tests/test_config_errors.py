"""Every configuration mistake: exit 2, one line on stderr naming file/key/line, no traceback."""

from __future__ import annotations

import pytest

from conftest import ort_demo_toml, run_cli, write_demo

BASE = ort_demo_toml()

CASES = [
    # (id, targets.toml text, expected fragment of the error line)
    ("toml-syntax", BASE + "\n[targets.broken\n", "invalid TOML"),
    ("unknown-top-level", BASE + "\n[modles.x]\nsource = 'm.onnx'\n", "did you mean 'models'"),
    (
        "unknown-target-key",
        BASE.replace('precision = "int8"', 'precision = "int8"\nper_chanel = true'),
        "targets.cpu-int8.per_chanel: unknown key for recipe 'onnxruntime' (did you mean 'per_channel'?)",
    ),
    (
        "unknown-model-key",
        BASE.replace('source = "models/digits.onnx"', 'source = "models/digits.onnx"\ncalibraton = "x"'),
        "models.digits.calibraton: unknown key in [models.digits] (did you mean 'calibration'?)",
    ),
    (
        "missing-source-file",
        BASE.replace("models/digits.onnx", "models/nope.onnx"),
        "models.digits.source: file not found: models/nope.onnx",
    ),
    (
        "missing-calibration-file",
        BASE.replace("data/digits_calibration.npz", "data/none.npz"),
        "models.digits.calibration: file not found",
    ),
    (
        "calibration-not-npz",
        BASE.replace("data/digits_calibration.npz", "models/digits.onnx"),
        "must be an .npz file",
    ),
    (
        "unknown-model",
        BASE.replace('[targets.cpu-fp32]\nmodel = "digits"', '[targets.cpu-fp32]\nmodel = "digit"'),
        "unknown model 'digit' (did you mean 'digits'?)",
    ),
    (
        "unknown-recipe",
        BASE.replace(
            'recipe = "onnxruntime"\nprecision = "fp16"', 'recipe = "onnxruntim"\nprecision = "fp16"'
        ),
        "unknown recipe 'onnxruntim' (did you mean 'onnxruntime'?)",
    ),
    (
        "unknown-device",
        BASE.replace('precision = "fp16"', 'precision = "fp16"\ndevice = "gpu-9000"'),
        "unknown device 'gpu-9000' for recipe 'onnxruntime'; known devices: cpu, cpu-arm64, cpu-x86-64",
    ),
    (
        "bad-choice",
        BASE.replace('precision = "fp16"', 'precision = "fp8"'),
        "'fp8' is not one of fp32, fp16, int8",
    ),
    (
        "wrong-type",
        BASE.replace('precision = "int8"', 'precision = "int8"\nper_channel = "yes"'),
        "targets.cpu-int8.per_channel: must be bool",
    ),
    ("bad-version", BASE.replace('version = "1.0.0"', 'version = "1.0"'), "'1.0' is not a semantic version"),
    ("bad-project-name", BASE.replace('name = "demo"', 'name = "My Demo"'), "is not a valid name"),
    ("missing-project-name", BASE.replace('name = "demo"\n', ""), "project: missing key 'name'"),
    (
        "duplicate-table",
        BASE + '\n[targets.cpu-fp32]\nmodel = "digits"\nrecipe = "onnxruntime"\n',
        "invalid TOML",
    ),
    (
        "case-duplicate",
        BASE + '\n[targets.CPU-FP32]\nmodel = "digits"\nrecipe = "onnxruntime"\n',
        "is not a valid name",
    ),
    (
        "target-missing-recipe",
        BASE.replace('recipe = "onnxruntime"\nprecision = "fp32"', 'precision = "fp32"'),
        "targets.cpu-fp32: missing key 'recipe'",
    ),
    ("no-targets", BASE.split("[targets.")[0], "no targets defined"),
    (
        "bad-input-shape",
        BASE.replace("input = [1, 1, 8, 8]", "input = [1, 0, 8, 8]"),
        "models.digits.input_shapes.input: must be a list of positive integers",
    ),
    (
        "table-expected",
        BASE.replace(
            '[targets.cpu-fp32]\nmodel = "digits"\nrecipe = "onnxruntime"\nprecision = "fp32"\nlatency_runs = 20\n',
            "",
        )
        + "\n[targets]\ncpu = 3\n",
        "targets.cpu: must be a table",
    ),
    # (int8 without calibration data is no configuration mistake: that target's `needs calibration data`,
    # tests/test_init_and_check.py)
    (
        "bad-input-range",
        BASE.replace("input_shapes =", "input_range = [1.0, 0.0]\ninput_shapes ="),
        "models.digits.input_range: must be [low, high] with low < high",
    ),
    (
        "source-not-onnx",
        BASE.replace('source = "models/digits.onnx"', 'source = "data/digits_eval.npz"'),
        "source must be an .onnx file or a model folder",
    ),
]


@pytest.mark.parametrize("text,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_config_mistake(tmp_path, text, expected):
    project = write_demo(tmp_path / "p", text)
    result = run_cli(project, "build", "-n")
    assert result.rc == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert lines[0].startswith("edgebuild: error: ")
    assert expected in lines[0], lines[0]


def test_errors_name_file_and_line(tmp_path):
    text = BASE.replace('precision = "fp16"', 'precision = "fp16"\ndevice = "gpu-9000"')
    project = write_demo(tmp_path / "p", text)
    line = run_cli(project, "build").stderr.strip()
    expected_line = text.splitlines().index('device = "gpu-9000"') + 1
    assert f"targets.toml:{expected_line}: targets.cpu-fp16.device" in line


def test_unknown_target_on_command_line(tmp_path):
    project = write_demo(tmp_path / "p")
    result = run_cli(project, "build", "cpu-int9")
    assert result.rc == 2
    assert "unknown target 'cpu-int9' (did you mean 'cpu-int8'?)" in result.stderr


def test_no_project_file(tmp_path):
    result = run_cli(tmp_path, "all")
    assert result.rc == 2
    assert "no targets.toml in" in result.stderr and "Traceback" not in result.stderr


def test_broken_project_recipe_is_reported_by_name(tmp_path):
    project = write_demo(tmp_path / "p")
    (project / "recipes").mkdir()
    (project / "recipes" / "onnxruntime.toml").write_text(
        '[recipe]\nname = "onnxruntime"\n[parameters]\nprecision = "fp32"\nlatency_runs = 1\n'
        'max_latency_ratio = "auto"\nint8_search = true\n'
        '[[steps]]\nid = "a"\nstep = "onnx.check"\ninputs = { model = "b.model.onnx" }\n'
        '[[steps]]\nid = "b"\nstep = "onnx.simplify"\ninputs = { model = "a.model.onnx" }\n'
    )
    result = run_cli(project, "build", "-n")
    assert result.rc == 2
    assert "recipes/onnxruntime.toml" in result.stderr and "cycle: a -> b -> a" in result.stderr


def test_a_recipe_still_setting_the_dropped_toolchain_key_warns_once_and_builds(tmp_path):
    """`[recipe] toolchain` was never read: a project recipe that sets it is one warning naming the
    file, not an error; the built-in recipes no longer set it."""
    from edgebuild.recipes import builtin_recipe_dir

    project = write_demo(tmp_path / "p")
    (project / "recipes").mkdir()
    builtin = (builtin_recipe_dir() / "onnxruntime.toml").read_text()
    assert "\n[recipe]\n" in builtin
    (project / "recipes" / "onnxruntime.toml").write_text(
        builtin.replace("\n[recipe]\n", '\n[recipe]\ntoolchain = "default"\n', 1)
    )
    result = run_cli(project, "build", "-n")
    assert result.rc == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "deprecated" in line]
    assert (
        len(warnings) == 1
        and "recipes/onnxruntime.toml" in warnings[0]
        and "[recipe] toolchain" in warnings[0]
    )
    (project / "recipes" / "onnxruntime.toml").unlink()
    assert "deprecated" not in run_cli(project, "build", "-n").stderr
