"""The generated loader.py: deterministic rendering, real self-tests through onnxruntime, the
predict API, and the other runtimes' loaders (rendered and compiled; run where their runtime exists)."""

from __future__ import annotations

import importlib.util
import json
import py_compile
import sys

import numpy as np
import pytest

from edgebuild.bundle import write_bundle
from edgebuild.bundle.loaders import LOADER_TEMPLATES, render_loader
from bundle_helpers import make_spec, run_loader


def test_loader_rendering_is_deterministic(work):
    assert render_loader(make_spec(work)) == render_loader(make_spec(work))


@pytest.mark.parametrize("runtime", sorted(set(LOADER_TEMPLATES) - {"tensorrt"}))
def test_every_loader_compiles_and_imports_nothing_from_edgebuild(runtime, work, tmp_path):
    source = render_loader(make_spec(work, runtime=runtime))
    assert "edgebuild." not in "\n".join(
        l for l in source.splitlines() if l.lstrip().startswith(("import", "from"))
    )
    path = tmp_path / "loader.py"
    path.write_text(source)
    py_compile.compile(str(path), doraise=True)


def test_selftest_passes_with_signature_check(unpacked, keypair):
    result = run_loader(unpacked / "loader.py", "selftest", "--key", str(keypair[1]))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok   y: max |diff|" in result.stdout and "self-test passed" in result.stdout
    # the target asked for CUDA first; this onnxruntime lacks it, and the loader says so
    assert "lacks CUDAExecutionProvider" in result.stderr


def test_selftest_with_wrong_expectation_fails(work, keypair, tmp_path):
    spec = make_spec(work, selftest=work / "selftest-wrong.npz")
    archive = write_bundle(spec, tmp_path / "bundles", keypair[0])
    folder = tmp_path / "unpacked"
    folder.mkdir()
    assert (
        run_loader(
            _any_loader(work, tmp_path),
            "install",
            str(archive),
            "--root",
            str(folder / "root"),
            "--key",
            str(keypair[1]),
        ).returncode
        == 1
    )
    import tarfile

    with tarfile.open(archive) as tar:
        tar.extractall(folder, filter="data")
    result = run_loader(folder / archive.name[: -len(".tar.gz")] / "loader.py", "selftest")
    assert result.returncode == 1
    assert "FAIL y" in result.stdout and "self-test FAILED" in result.stdout


def _any_loader(work, tmp_path):
    path = tmp_path / "standalone_loader.py"
    path.write_text(render_loader(make_spec(work)))
    return path


def test_predict_from_python_and_command_line(unpacked, work, tmp_path):
    spec = importlib.util.spec_from_file_location("bundle_loader", unpacked / "loader.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with np.load(work / "selftest.npz") as data:
        x, expected = data["input.x"], data["expected.y"]
    model = module.load()
    np.testing.assert_allclose(model.predict({"x": x})["y"], expected, rtol=1e-6)
    np.savez(tmp_path / "in.npz", x=x)
    result = run_loader(
        unpacked / "loader.py",
        "predict",
        "--inputs",
        str(tmp_path / "in.npz"),
        "--out",
        str(tmp_path / "out.npz"),
    )
    assert result.returncode == 0, result.stderr
    with np.load(tmp_path / "out.npz") as out:
        np.testing.assert_allclose(out["y"], expected, rtol=1e-6)
    # importing loader.py leaves __pycache__ in the folder; verification ignores exactly that
    assert run_loader(unpacked / "loader.py", "verify").returncode == 0


@pytest.mark.skipif(sys.platform == "darwin", reason="checks the message Core ML bundles give off macOS")
def test_coreml_loader_off_macos_says_why(work, keypair, tmp_path):
    package = tmp_path / "Model.mlpackage"
    package.mkdir()
    (package / "Manifest.json").write_text("{}\n")
    archive = write_bundle(
        make_spec(work, runtime="coreml", artifacts={"Model.mlpackage": package}),
        tmp_path / "bundles",
        keypair[0],
    )
    import tarfile

    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path, filter="data")
    folder = tmp_path / archive.name[: -len(".tar.gz")]
    swift = (folder / "LoadModel.swift").read_text()
    assert '"Model.mlpackage"' in swift and "MLModel.compileModel" in swift
    result = run_loader(folder / "loader.py", "selftest", "--key", str(keypair[1]))
    assert result.returncode == 2 and "only on macOS" in result.stderr
    assert run_loader(folder / "loader.py", "verify", "--key", str(keypair[1])).returncode == 0


def test_runtime_options_reach_the_loader(work, tmp_path):
    source = render_loader(make_spec(work, runtime="tflite", runtime_options={"delegate": "edgetpu"}))
    namespace: dict = {"__name__": "not_main", "__file__": str(tmp_path / "loader.py")}
    exec(compile(source, "loader.py", "exec"), namespace)
    assert namespace["RUNTIME_OPTIONS"] == {"delegate": "edgetpu"}
    assert json.loads(json.dumps(namespace["RUNTIME_OPTIONS"])) == {"delegate": "edgetpu"}
