"""The generated loader.py is the package's own modules pasted verbatim (edgebuild/bundle/loader_*.py,
runtime_hooks/, portable.py, ...; the TensorRT loader also steps/tensorrt/engine_builder.py) plus a
few constants: each rendered loader holds every module's source byte for byte, the modules import
as code, the pasted parts define no name twice, and ruff's pyflakes rules pass on a whole rendered
loader (where every name one part reads from another must be defined)."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgebuild.bundle.loaders import LOADER_TEMPLATES, module_source, render_loader
from edgebuild.bundle.spec import BundleSpec

COMMON = [
    "edgebuild.bundle.portable",
    "edgebuild.bundle.ed25519_verify",
    "edgebuild.bundle.delta_apply",
    "edgebuild.bundle.loader_verify",
    "edgebuild.bundle.loader_model",
    "edgebuild.bundle.loader_compare",
    "edgebuild.bundle.loader_update",
    "edgebuild.bundle.fleet_runtime",
    "edgebuild.bundle.loader_index",
    "edgebuild.bundle.loader_cli",
]
HOOKS = {
    "onnxruntime": ["edgebuild.bundle.runtime_hooks.onnxruntime"],
    "tflite": ["edgebuild.bundle.runtime_hooks.tflite"],
    "coreml": ["edgebuild.bundle.runtime_hooks.coreml"],
    "llama.cpp": ["edgebuild.bundle.runtime_hooks.llama_cpp"],
    "tensorrt": ["edgebuild.steps.tensorrt.engine_builder", "edgebuild.bundle.runtime_hooks.tensorrt"],
}
RUFF = Path(sys.executable).parent / "ruff"  # a dev dependency (pyproject.toml), like pytest


def _spec(runtime: str) -> BundleSpec:
    return BundleSpec(
        project="demo",
        version="1.2.3",
        target="t",
        device="d",
        recipe=runtime,
        runtime=runtime,
        artifacts={},
        io={},
        selftest=None,
        runtime_options={"threads": 2},
    )


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("loaders")
    paths = {}
    for runtime in sorted(LOADER_TEMPLATES):
        paths[runtime] = folder / f"loader_{runtime.replace('.', '_')}.py"
        paths[runtime].write_text(render_loader(_spec(runtime)), encoding="utf-8")
    return paths


def test_every_builtin_runtime_has_its_hooks_listed():
    assert set(HOOKS) == set(LOADER_TEMPLATES)


@pytest.mark.parametrize("runtime", sorted(HOOKS))
def test_rendered_loader_is_the_modules_verbatim_in_order(rendered, runtime):
    text = rendered[runtime].read_text(encoding="utf-8")
    modules = COMMON[:4] + HOOKS[runtime] + COMMON[4:]
    positions = []
    for name in modules:
        source = module_source(name)
        assert text.count(source) == 1, f"{name} is not pasted verbatim exactly once"
        positions.append(text.index(source))
    assert positions == sorted(positions)
    pasted = sum(len(module_source(name)) for name in modules)
    assert len(text) - pasted < 6000  # the rest is the header, constants and section comments


@pytest.mark.parametrize("runtime", sorted(HOOKS))
def test_jinja_fills_only_constants(rendered, runtime):
    text = rendered[runtime].read_text(encoding="utf-8")
    assert 'BUNDLE_NAME = "demo-t-1.2.3"' in text and 'MANIFEST_TARGET = "t"' in text
    assert 'RUNTIME_OPTIONS = json.loads("{\\"threads\\": 2}")' in text
    for name in COMMON + HOOKS[runtime]:
        text = text.replace(module_source(name), "")
    # what the templates add: the docstring, imports, constants, two calls; no function, no class
    kinds = {type(node).__name__ for node in ast.parse(text).body}
    assert kinds == {"Expr", "ImportFrom", "Import", "Assign", "If"}, kinds


@pytest.mark.parametrize("runtime", sorted(HOOKS))
def test_pasted_parts_define_no_name_twice(runtime):
    """Ruff's F811 is off for rendered loaders (each part imports the standard-library modules it
    needs, so `import os` repeats); this is the check F811 would give: no function, class or
    constant of one part is silently replaced by another's, and a repeated import is the same."""
    defined: dict[str, tuple[str, str]] = {}
    for module in COMMON + HOOKS[runtime]:
        for node in ast.parse(module_source(module)).body:
            if isinstance(node, ast.Import):  # `import a.b` binds a, to module a
                names = {
                    (a.asname or a.name.split(".")[0]): "import "
                    + (a.name if a.asname else a.name.split(".")[0])
                    for a in node.names
                }
            elif isinstance(node, ast.ImportFrom):
                names = {(a.asname or a.name): f"import {node.module}.{a.name}" for a in node.names}
            elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                names = {node.name: module}
            elif isinstance(node, ast.Assign):
                names = {t.id: module for t in node.targets if isinstance(t, ast.Name)}
            else:
                continue
            for name, what in names.items():
                if name in defined and not (defined[name][1] == what and what.startswith("import ")):
                    pytest.fail(f"{name} is defined by {defined[name][0]} and again by {module}")
                defined[name] = (module, what)


def _ruff_f_check(*paths: Path) -> subprocess.CompletedProcess:
    """ruff's pyflakes rules on rendered loaders, as .ci/run runs them (F811 off: each pasted module
    imports its own os, json...)."""
    command = [str(RUFF), "check", "--select", "F", "--ignore", "F811", "--ignore-noqa"]
    return subprocess.run(
        [*command, "--output-format", "concise", *map(str, paths)], capture_output=True, text=True
    )


def test_ruff_pyflakes_rules_pass_on_every_rendered_loader(rendered):
    # --ignore-noqa: the modules' file-wide F821 exemptions (names read from other parts) must not hide
    # a name that no part of the whole loader defines
    done = _ruff_f_check(*rendered.values())
    assert done.returncode == 0, done.stdout + done.stderr


def test_ruff_finds_a_name_no_part_defines(tmp_path):
    broken = tmp_path / "loader.py"
    broken.write_text(
        render_loader(_spec("onnxruntime")) + "\n\ndef extra():\n    return undefined_helper()\n"
    )
    done = _ruff_f_check(broken)
    assert done.returncode == 1 and "undefined_helper" in done.stdout


@pytest.mark.parametrize("module", COMMON + sorted({m for ms in HOOKS.values() for m in ms}))
def test_modules_import_as_code_and_parse_as_python37(module):
    importlib.import_module(module)
    tree = ast.parse(module_source(module), feature_version=(3, 7))
    # `from __future__` is only legal at a file's top, and the loader imports nothing from edgebuild
    imported = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)] + [
        a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
    ]
    assert not [m for m in imported if m and m.startswith(("__future__", "edgebuild"))]


def test_compare_outputs_is_testable_as_code():
    from edgebuild.bundle.loader_compare import compare_outputs

    want = np.arange(6, dtype=np.float32).reshape(1, 6)
    problems, report = compare_outputs({"y": want[0] + 1e-7}, {"y": want}, 1e-5, 1e-4, 0.99)
    assert problems == [] and report[0].startswith("ok   y: max |diff|")  # a dropped batch axis is fine
    problems, _ = compare_outputs({"y": want * -1}, {"y": want}, 100.0, 0.0, 0.5)
    assert problems and "cosine -1.000000 (min 0.500000)" in problems[0]  # close enough, wrong direction
    problems, _ = compare_outputs({}, {"y": want}, 1e-5, 1e-4, None)
    assert problems == ["FAIL y: the model produced no output of that name (got none)"]


def test_module_source_names_a_missing_module():
    from edgebuild.bundle.errors import BundleError

    with pytest.raises(BundleError, match="no_such_module"):
        module_source("edgebuild.bundle.no_such_module")
