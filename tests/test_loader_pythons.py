"""Every generated loader under every Python its devices ship, from 3.7 up (pyenv's interpreters
on this machine), with nothing installed: `-I -S` (no site-packages, so no `cryptography`) and a
PATH without `openssl`, so the signature goes through the loader's pure-Python Ed25519. A good
bundle verifies; one whose manifest was edited after signing, or whose artifact lost a byte, does
not. The Coral loader's self-test runs under Python 3.7 with tflite_runtime 2.11 (a venv created
once and cached), the way a Coral Dev Board (Mendel 5.3) runs it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from device_pythons import cached_venv, interpreter, oldest_device_python, pythons_from
from edgebuild.bundle.loaders import LOADER_TEMPLATES

PURE = "signature verified with the loader's pure-Python Ed25519"
CASES = [
    (runtime, minor, python)
    for runtime in sorted(LOADER_TEMPLATES)
    for minor, python in pythons_from(oldest_device_python(runtime))
]
CORAL_RUNTIME = ["tflite-runtime==2.11.0", "numpy==1.21.6"]  # the newest numpy with Python 3.7 wheels


def run_plain(python: str, loader, *args: str, path_dir=None, isolated_site: bool = True):
    """The loader as a bare device runs it: no site-packages (with isolated_site), no PYTHON*
    variables, and only `path_dir` (default: an empty folder) on PATH, so no openssl either."""
    env = {"PATH": str(path_dir), "LC_ALL": "C.UTF-8"}
    flags = ["-I", "-S"] if isolated_site else ["-I"]
    return subprocess.run(
        [python, *flags, str(loader), *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=str(loader.parent),
        env=env,
    )


@pytest.fixture
def empty_bin(tmp_path):
    folder = tmp_path / "bin"
    folder.mkdir()
    return folder


@pytest.mark.parametrize(
    "runtime,minor,python",
    [pytest.param(*case, id=f"{case[0]}-py{case[1]}") for case in CASES]
    or [
        pytest.param(
            None,
            None,
            None,
            marks=pytest.mark.skip(
                reason="no pyenv interpreters under ~/.pyenv/versions (or $PYENV_ROOT) on this machine"
            ),
        )
    ],
)
def test_loader_verifies_under_device_python(runtime, minor, python, device_bundles, keypair, empty_bin):
    bundle = device_bundles[runtime]
    key = str(keypair[1])
    loader = bundle.folder / "loader.py"

    good = run_plain(python, loader, "verify", str(bundle.archive), "--key", key, path_dir=empty_bin)
    assert good.returncode == 0, good.stdout + good.stderr
    assert PURE in good.stdout, good.stdout

    edited = run_plain(python, loader, "verify", str(bundle.edited_archive), "--key", key, path_dir=empty_bin)
    assert edited.returncode == 1, edited.stdout + edited.stderr
    assert "signature of manifest.json does not verify" in edited.stderr

    flipped = run_plain(
        python, bundle.flipped_folder / "loader.py", "verify", "--key", key, path_dir=empty_bin
    )
    assert flipped.returncode == 1, flipped.stdout + flipped.stderr
    assert f"checksum mismatch for {bundle.artifact}" in flipped.stderr


def _python37():
    python = interpreter("3.7")
    if python is None:
        pytest.skip("no Python 3.7 interpreter (pyenv) on this machine")
    return python


def test_openssl_111_on_path_is_passed_over(device_bundles, keypair, tmp_path):
    """Mendel and JetPack 5 have OpenSSL 1.1.1, whose `pkeyutl` has no -rawin: the loader must
    not rely on it. The `openssl` here is a stand-in script answering like 1.1.1 (a real 1.1.1
    cannot be installed beside this machine's OpenSSL 3), failing every other command."""
    python = _python37()
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "openssl").write_text(
        '#!/bin/sh\nif [ "$1" = version ]; then echo "OpenSSL 1.1.1n  15 Mar 2022"; '
        'exit 0; fi\necho "pkeyutl: Unknown option: -rawin" >&2\nexit 1\n'
    )
    (fake / "openssl").chmod(0o755)
    bundle = device_bundles["tflite"]
    result = run_plain(
        python,
        bundle.folder / "loader.py",
        "verify",
        str(bundle.archive),
        "--key",
        str(keypair[1]),
        path_dir=fake,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert PURE in result.stdout


@pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl command on this machine")
def test_openssl_3_is_used_where_present(device_bundles, keypair, tmp_path):
    python = _python37()
    version = subprocess.run(["openssl", "version"], capture_output=True, text=True).stdout
    if not version.startswith("OpenSSL 3"):
        pytest.skip(f"this machine's openssl is not OpenSSL 3 ({version.strip()})")
    folder = tmp_path / "bin"
    folder.mkdir()
    os.symlink(shutil.which("openssl"), folder / "openssl")
    bundle = device_bundles["tensorrt"]
    good = run_plain(
        python,
        bundle.folder / "loader.py",
        "verify",
        str(bundle.archive),
        "--key",
        str(keypair[1]),
        path_dir=folder,
    )
    assert good.returncode == 0 and "signature verified with the openssl command (OpenSSL 3" in good.stdout
    edited = run_plain(
        python,
        bundle.folder / "loader.py",
        "verify",
        str(bundle.edited_archive),
        "--key",
        str(keypair[1]),
        path_dir=folder,
    )
    assert edited.returncode == 1 and "signature of manifest.json does not verify" in edited.stderr


def test_small_order_key_is_refused_by_every_backend(device_bundles, tmp_path, empty_bin):
    """Under the identity point as public key, R = identity and S = 0 "verifies" any manifest in
    OpenSSL; the loader refuses such a key whichever backend it would use."""
    import base64

    key = tmp_path / "small.pub.pem"
    der = bytes.fromhex("302a300506032b6570032100") + bytes([1]) + bytes(31)
    key.write_bytes(b"-----BEGIN PUBLIC KEY-----\n" + base64.b64encode(der) + b"\n-----END PUBLIC KEY-----\n")
    bundle = device_bundles["onnxruntime"]
    forged = tmp_path / "forged"
    shutil.copytree(bundle.folder, forged)
    (forged / "manifest.sig").write_bytes(bytes([1]) + bytes(63))  # R = identity, S = 0
    pure = run_plain(_python37(), forged / "loader.py", "verify", "--key", str(key), path_dir=empty_bin)
    assert pure.returncode == 1 and "small order" in pure.stderr, pure.stdout + pure.stderr
    with_cryptography = subprocess.run(
        [sys.executable, str(forged / "loader.py"), "verify", "--key", str(key)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert with_cryptography.returncode == 1 and "small order" in with_cryptography.stderr


def test_requirements_in_manifest_and_readme(device_bundles):
    import json

    coral = device_bundles["tflite"]
    manifest = json.loads((coral.folder / "manifest.json").read_text())
    assert manifest["requirements"] == {
        "python": ">=3.7",
        "os": "Mendel Linux 5.3 (Debian 10 buster), arm64",
        "device_python": "3.7",
        "openssl": "1.1.1",
        "runtime_package": "tflite_runtime",
        "runtime_version": "2.5",
    }
    readme = (coral.folder / "README.md").read_text()
    assert "Python 3.7 or newer for `loader.py`" in readme
    assert "else `tflite_runtime`" in readme and "`libedgetpu.so.1`" in readme
    assert "this device's OpenSSL is 1.1.1" in readme
    jetson = json.loads((device_bundles["tensorrt"].folder / "manifest.json").read_text())
    assert jetson["requirements"]["python"] == ">=3.8"
    assert (jetson["requirements"]["runtime_package"], jetson["requirements"]["runtime_version"]) == (
        "tensorrt",
        "8.5",
    )


@pytest.fixture(scope="session")
def coral_python37():
    """Python 3.7 with tflite_runtime 2.11 and numpy, as on a Coral Dev Board (Mendel 5.3)."""
    python = interpreter("3.7")
    if python is None:
        pytest.skip("no Python 3.7 interpreter (pyenv) on this machine")
    venv, why = cached_venv("py3.7-tflite-runtime-2.11.0", python, CORAL_RUNTIME)
    if venv is None:
        pytest.skip(f"no tflite_runtime 2.11 environment for Python 3.7: {why}")
    return str(venv / "bin" / "python")


def test_coral_selftest_under_python37_with_tflite_runtime(
    coral_python37, device_bundles, keypair, empty_bin
):
    probe = subprocess.run([coral_python37, "-I", "-c", "import ai_edge_litert"], capture_output=True)
    assert probe.returncode != 0, "ai_edge_litert must be absent, as on the device"
    bundle = device_bundles["tflite"]
    result = run_plain(
        coral_python37,
        bundle.folder / "loader.py",
        "selftest",
        "--key",
        str(keypair[1]),
        path_dir=empty_bin,
        isolated_site=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert PURE in result.stdout
    assert "runtime: tflite_runtime 2.11.0 on the CPU" in result.stdout
    assert "WARNING: Edge TPU NOT USED" in result.stderr and "libedgetpu.so.1" in result.stderr
    assert "ok   y:" in result.stdout and "self-test passed" in result.stdout


def test_coral_install_under_python37(coral_python37, device_bundles, keypair, empty_bin, tmp_path):
    """The update path (stage, verify, self-test in a child process, switch) on the device Python."""
    bundle = device_bundles["tflite"]
    root = tmp_path / "models"
    result = run_plain(
        coral_python37,
        bundle.folder / "loader.py",
        "install",
        str(bundle.archive),
        "--root",
        str(root),
        "--key",
        str(keypair[1]),
        path_dir=empty_bin,
        isolated_site=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "self-test passed" in result.stdout
    assert (root / "active" / "manifest.json").read_bytes() == (bundle.folder / "manifest.json").read_bytes()


def test_onnxruntime_loader_says_what_ran(device_bundles, keypair):
    """The runtime line of `selftest`: package, version and the execution providers in use."""
    import onnxruntime

    bundle = device_bundles["onnxruntime"]
    result = subprocess.run(
        [sys.executable, str(bundle.folder / "loader.py"), "selftest", "--key", str(keypair[1])],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"runtime: onnxruntime {onnxruntime.__version__} with CPUExecutionProvider" in result.stdout
    assert "signature verified with the cryptography package" in result.stdout


def test_damaged_archives_are_rejected_in_one_line_under_python37(
    device_bundles, keypair, tmp_path, empty_bin
):
    """Python 3.7's gzip has no BadGzipFile: a non-gzip or truncated archive must still be a clean
    rejection (exit 1, one line), not a traceback."""
    bundle = device_bundles["tflite"]
    not_gzip = tmp_path / "not-gzip.tar.gz"
    not_gzip.write_bytes(b"PK\x03\x04 a zip, not a bundle")
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(bundle.archive.read_bytes()[:3000])
    for damaged, words in ((not_gzip, "not a gzip"), (truncated, "truncated")):
        result = run_plain(
            _python37(),
            bundle.folder / "loader.py",
            "verify",
            str(damaged),
            "--key",
            str(keypair[1]),
            path_dir=empty_bin,
        )
        assert result.returncode == 1, result.stdout + result.stderr
        assert words in result.stderr and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
