"""Runtime plugins (edgebuild/runtimes/): a toy runtime from a test package, registered the way a
third party would (entry points in the groups `edgebuild.runtimes` and `edgebuild.steps`, from a
.dist-info folder on PYTHONPATH), builds end to end to a signed bundle carrying its own loader,
its extra file, its runtime options and the manifest metadata it declares (model I/O from its own
metadata key, the self-test from its own output name), without touching any file of edgebuild."""

from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pytest

from conftest import run_cli, write_demo
from plugin_package import env_with_plugins, write_plugin_package
from edgebuild.errors import ConfigError
from edgebuild.recipes import parse_recipe

TOY_MODULE = """
import shutil
from pathlib import Path

from edgebuild.runtimes import RuntimeInterface
from edgebuild.steps.base import Step


TOY_IO = {"inputs": [{"name": "x", "shape": [1, 4], "dtype": "float32"}],
          "outputs": [{"name": "y", "shape": [1, 4], "dtype": "float32"}]}


class Copy(Step):
    name = "toyrt.copy"
    version = "1"
    inputs = ("model",)
    outputs = ("model.toy", "reference.npz")

    def run(self, ctx):
        import numpy as np
        shutil.copyfile(ctx.input("model"), ctx.output("model.toy"))
        with open(ctx.output("reference.npz"), "wb") as f:
            np.savez(f, x=np.ones((1, 4), np.float32), y=np.ones((1, 4), np.float32))
        return {"toy_io": TOY_IO, "io": {"inputs": [], "outputs": []}}


class ToyRuntime(RuntimeInterface):
    name = "toy"
    loader_template = "loader_toy.py.j2"
    templates_dir = Path(__file__).parent / "toyrt_templates"
    option_keys = ("greeting",)
    step_kinds = ("toyrt.",)
    io_metadata = "toy_io"              # not the built-ins' "io": the manifest must take this one
    selftest_output = "reference.npz"

    def extra_files(self, spec):
        return {"TOY.txt": ("toy runtime for " + spec.target + "\\n").encode()}
"""

TOY_LOADER = '''#!/usr/bin/env python3
"""Toy loader of {{ bundle_name }} (runtime {{ runtime }})."""
import json
RUNTIME_OPTIONS = json.loads({{ options_json | tojson }})
print(RUNTIME_OPTIONS["greeting"])
'''

TOY_RECIPE = """
[recipe]
name = "toy"
description = "copies the model; bundled for the toy runtime"
runtime = "{runtime}"
default_device = "cpu"

[parameters]
greeting = "hello"

[devices.cpu]
description = "any host"

[[steps]]
id = "copy"
step = "toyrt.copy"
inputs = {{ model = "model.source" }}
artifact = "model.toy"
"""

TARGETS = (
    '[project]\nname = "toyproj"\nversion = "1.0.0"\n\n[models.digits]\nsource = "models/digits.onnx"\n\n'
    '[targets.toy-cpu]\nmodel = "digits"\nrecipe = "toy"\ngreeting = "hi from toy"\n'
)


@pytest.fixture(scope="module")
def toy_env(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("toyrt")
    write_plugin_package(
        base,
        "edgebuild_toyrt",
        TOY_MODULE,
        {
            "edgebuild.steps": {"toyrt.copy": "edgebuild_toyrt:Copy"},
            "edgebuild.runtimes": {"toy": "edgebuild_toyrt:ToyRuntime"},
        },
    )
    (base / "toyrt_templates").mkdir()
    (base / "toyrt_templates" / "loader_toy.py.j2").write_text(TOY_LOADER)
    return env_with_plugins(base)


def _toy_project(dest, runtime: str):
    project = write_demo(dest, TARGETS)
    (project / "recipes").mkdir()
    (project / "recipes" / "toy.toml").write_text(TOY_RECIPE.format(runtime=runtime))
    return project


def test_a_toy_runtime_from_an_entry_point_builds_a_bundle(tmp_path, toy_env):
    project = _toy_project(tmp_path / "p", "toy")
    result = run_cli(project, "all", "--json", env=toy_env)
    assert result.rc == 0, result.stderr
    bundle = project / result.json["targets"]["toy-cpu"]["bundle"]
    with tarfile.open(bundle) as tar:
        names = {m.name.split("/", 1)[1] for m in tar.getmembers() if "/" in m.name}
        top = tar.getmembers()[0].name.split("/")[0]
        loader = tar.extractfile(f"{top}/loader.py").read().decode()
        extra = tar.extractfile(f"{top}/TOY.txt").read().decode()
        manifest = json.loads(tar.extractfile(f"{top}/manifest.json").read())
        selftest = np.load(io.BytesIO(tar.extractfile(f"{top}/selftest/selftest.npz").read()))
    assert {"loader.py", "TOY.txt", "model.toy", "manifest.json"} <= names
    assert "Toy loader of toyproj-toy-cpu-1.0.0 (runtime toy)" in loader
    assert extra == "toy runtime for toy-cpu\n"
    assert manifest["runtime"] == "toy"
    assert manifest["runtime_options"] == {"greeting": "hi from toy"}
    assert manifest["io"]["inputs"][0]["name"] == "x" and manifest["io"]["outputs"][0]["name"] == "y"
    assert sorted(selftest.files) == ["x", "y"]


def test_an_unknown_runtime_is_one_line_naming_the_recipe_and_the_known_runtimes(tmp_path, toy_env):
    project = _toy_project(tmp_path / "p", "openvino")
    with pytest.raises(ConfigError) as caught:
        parse_recipe(project / "recipes" / "toy.toml")
    message = str(caught.value)
    assert "toy.toml" in message and "unknown runtime 'openvino'" in message
    assert "onnxruntime" in message and "llama.cpp" in message
    result = run_cli(project, "build", env=toy_env)
    assert result.rc == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "unknown runtime 'openvino'" in result.stderr
    assert "toy" in result.stderr.split("known:")[1]  # the installed plugin is among the known runtimes


def test_each_builtin_recipe_uses_only_its_runtimes_step_kinds_and_the_shared_ones():
    """What a built-in runtime declares (step_kinds, where its manifest's I/O and self-test come
    from) matches its recipes: every step kind is its own or a shared one (onnx.*, coverage.*), and
    the recipe has a step writing the declared self-test output."""
    from edgebuild.recipes import builtin_recipe_dir
    from edgebuild.runtimes import builtin_runtimes
    from edgebuild.steps import get_step

    seen = set()
    for file in sorted(builtin_recipe_dir().glob("*.toml")):
        recipe = parse_recipe(file)
        runtime = builtin_runtimes()[recipe.runtime]
        seen.add(runtime.name)
        for step in recipe.steps:
            assert step.step.startswith(runtime.step_kinds + ("onnx.", "coverage.")), (file.name, step.step)
        assert any(runtime.selftest_output in get_step(s.step).outputs for s in recipe.steps), file.name
    assert seen == set(builtin_runtimes())


def test_default_manifest_metadata_prefers_the_artifacts_io_and_the_last_selftest():
    """The rule bundling used to hard-code, now RuntimeInterface's default: the I/O an artifact's
    step reports beats an earlier step's (it describes what ships); without one, the first step's;
    the self-test is the last one written; runtime options are the declared keys the target sets."""
    from edgebuild.runtimes import StepRecord, get_runtime

    source_io = {"inputs": [{"name": "x"}], "outputs": [{"name": "y"}]}
    shipped_io = {"inputs": [{"name": "x_int8"}], "outputs": [{"name": "y_int8"}]}
    check = StepRecord("onnx.check", {"model.onnx": {"digest": "a"}}, {"io": source_io})
    convert = StepRecord("ort.quantize", {"model.onnx": {"digest": "b"}}, {"io": shipped_io})
    verify_old = StepRecord("ort.verify", {"selftest.npz": {"digest": "c"}}, {})
    verify = StepRecord("ort.verify", {"selftest.npz": {"digest": "d"}}, {"metrics": {}})
    ort = get_runtime("onnxruntime")
    made = ort.manifest_metadata(
        [check, convert, verify_old, verify],
        [convert],
        {"providers": ["CPUExecutionProvider"], "precision": "int8"},
    )
    assert made.io == shipped_io and made.selftest == {"digest": "d"}
    assert made.runtime_options == {"providers": ["CPUExecutionProvider"]}
    bare = ort.manifest_metadata([StepRecord("ort.optimize")], [], {})
    assert bare.io == {"inputs": [], "outputs": []} and bare.selftest is None and bare.runtime_options == {}
    assert ort.manifest_metadata([check, convert], [], {}).io == source_io
