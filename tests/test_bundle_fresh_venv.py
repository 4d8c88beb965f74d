"""The onnxruntime bundle's loader in a fresh virtual environment holding only onnxruntime and
numpy: no edgebuild, no cryptography (the signature is then checked with the openssl command)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile

import pytest

from bundle_helpers import isolated_env, run_loader

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def runtime_only_python(tmp_path_factory) -> str:
    venv = tmp_path_factory.mktemp("venv") / "ort-only"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "onnxruntime", "numpy"],
        check=True,
        timeout=900,
    )
    return python


def test_venv_has_only_the_runtime(runtime_only_python, tmp_path):
    for absent in ("edgebuild", "cryptography"):
        probe = subprocess.run(
            [runtime_only_python, "-c", f"import {absent}"],
            capture_output=True,
            cwd=tmp_path,
            env=isolated_env(),
        )
        assert probe.returncode != 0, f"{absent} must not be importable in the runtime-only venv"


@pytest.mark.skipif(shutil.which("openssl") is None, reason="the loader's signature fallback needs openssl")
def test_fresh_venv_selftest_and_tamper(runtime_only_python, bundle, keypair, tmp_path):
    folder = tmp_path / "device"
    folder.mkdir()
    with tarfile.open(bundle) as tar:
        tar.extractall(folder, filter="data")
    loader = folder / bundle.name[: -len(".tar.gz")] / "loader.py"
    key = str(keypair[1])

    passed = run_loader(loader, "selftest", "--key", key, python=runtime_only_python)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "self-test passed" in passed.stdout

    installed = run_loader(
        loader,
        "install",
        str(bundle),
        "--root",
        str(tmp_path / "root"),
        "--key",
        key,
        python=runtime_only_python,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr

    # a tampered copy: one byte of the model flipped, and separately a manifest signed by nobody
    model = loader.parent / "model.onnx"
    original = model.read_bytes()
    model.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    flipped = run_loader(loader, "selftest", "--key", key, python=runtime_only_python)
    assert flipped.returncode == 1 and "checksum mismatch for model.onnx" in flipped.stderr
    model.write_bytes(original)
    manifest = loader.parent / "manifest.json"
    manifest.write_bytes(manifest.read_bytes().replace(b'"latency_ms": 0.1', b'"latency_ms": 0.01'))
    edited = run_loader(loader, "selftest", "--key", key, python=runtime_only_python)
    assert edited.returncode == 1 and "signature of manifest.json does not verify" in edited.stderr
