"""Shared fixtures: the demo project copied into a temp folder and built once per test session;
tests that change it work on their own copy of that built project (cache included), so each
heavy artifact is built once per run. Also the bundle tests' tiny model, keys and signed bundle,
once per session."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
ORT_TARGETS = ("cpu-fp32", "cpu-fp16", "cpu-int8")


@dataclass
class CliResult:
    rc: int
    stdout: str
    stderr: str

    @property
    def json(self) -> dict:
        return json.loads(self.stdout)


def run_cli(project: Path, *args: str, env: dict | None = None, timeout: float = 600) -> CliResult:
    """`edgebuild ARGS -C project` through the real CLI in a subprocess."""
    full_env = {k: v for k, v in os.environ.items() if k != "EDGEBUILD_SIGNING_KEY"}
    full_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-m", "edgebuild", *args, "-C", str(project)],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def write_demo(dest: Path, targets_toml: str | None = None) -> Path:
    """A project folder with the demo model and data, and the given (or the ORT demo) targets.toml."""
    dest.mkdir(parents=True, exist_ok=True)
    for sub in ("models/digits.onnx", "data/digits_calibration.npz", "data/digits_eval.npz"):
        (dest / sub).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO / sub, dest / sub)
    (dest / "targets.toml").write_text(targets_toml if targets_toml is not None else ort_demo_toml())
    return dest


def ort_demo_toml(extra: str = "") -> str:
    text = """
[project]
name = "demo"
version = "1.0.0"

[models.digits]
source = "models/digits.onnx"
calibration = "data/digits_calibration.npz"
evaluation = "data/digits_eval.npz"
input_shapes = { input = [1, 1, 8, 8] }
"""
    for target, precision in zip(ORT_TARGETS, ("fp32", "fp16", "int8")):
        text += (
            f'\n[targets.{target}]\nmodel = "digits"\nrecipe = "onnxruntime"\nprecision = "{precision}"\n'
            f"latency_runs = 20\n"
        )
        if precision == "int8":  # int8 is slower than fp32 on this tiny model; one fixed configuration
            text += "max_latency_ratio = false\nint8_search = false\n"  # keeps the bytes reproducible
    return text + extra


@pytest.fixture(scope="session")
def built_demo(tmp_path_factory) -> Path:
    """The onnxruntime demo targets, built and bundled once for the whole session."""
    project = write_demo(tmp_path_factory.mktemp("built") / "demo")
    result = run_cli(project, "all", "--json", "-j", "2")
    assert result.rc == 0, result.stderr
    return project


@pytest.fixture
def demo_copy(built_demo, tmp_path) -> Path:
    """A private copy of the built demo (cache and state included) that a test may change."""
    dest = tmp_path / "demo"
    shutil.copytree(built_demo, dest, symlinks=True)
    return dest


# The bundle tests' shared artifacts (test_bundle_*.py), built once per session from the plain
# helpers in bundle_helpers.py; imports stay inside so other tests do not pay for them.


@pytest.fixture(scope="session")
def work(tmp_path_factory) -> Path:
    """A tiny real ONNX model, its onnxruntime self-test, and a self-test that must fail."""
    from bundle_helpers import make_selftest, make_tiny_onnx

    work = tmp_path_factory.mktemp("bundle-work")
    make_tiny_onnx(work / "tiny.onnx")
    make_selftest(work / "tiny.onnx", work / "selftest.npz")
    make_selftest(work / "tiny.onnx", work / "selftest-wrong.npz", corrupt=True)
    return work


def _keypair(folder: Path):
    from edgebuild.bundle import keygen
    from edgebuild.bundle.keys import load_private_key

    private, public = keygen(folder)
    return load_private_key(private), public


@pytest.fixture(scope="session")
def keypair(tmp_path_factory):
    """(private key, public key path): the release key."""
    return _keypair(tmp_path_factory.mktemp("keys") / "release")


@pytest.fixture(scope="session")
def other_keypair(tmp_path_factory):
    """A second, unrelated key pair."""
    return _keypair(tmp_path_factory.mktemp("keys") / "other")


@pytest.fixture(scope="session")
def bundle(work, keypair, tmp_path_factory) -> Path:
    """The reference signed bundle demo-cpu-fp32-1.0.0.tar.gz."""
    from bundle_helpers import make_spec

    from edgebuild.bundle import write_bundle

    return write_bundle(make_spec(work), tmp_path_factory.mktemp("bundles"), keypair[0])


@pytest.fixture(scope="session")
def unpacked(bundle, tmp_path_factory) -> Path:
    """The reference bundle unpacked with plain tar: the loader a device already trusts."""
    dest = tmp_path_factory.mktemp("unpacked")
    with tarfile.open(bundle) as tar:
        tar.extractall(dest, filter="data")
    return dest / bundle.name[: -len(".tar.gz")]


@pytest.fixture(scope="session")
def device_bundles(work, keypair, tmp_path_factory) -> dict:
    """{runtime: DeviceBundle}: one signed bundle per loader runtime for a real device profile,
    with a copy whose manifest was edited after signing and one with an artifact byte flipped."""
    from device_bundles import RUNTIME_DEVICES, make_device_bundle

    out = tmp_path_factory.mktemp("device-bundles")
    return {
        runtime: make_device_bundle(runtime, work, keypair[0], out / runtime.replace(".", "_"))
        for runtime in RUNTIME_DEVICES
    }
