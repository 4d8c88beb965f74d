"""Delta bundles and the deployment manifest (issue 18), through the CLI and the generated loader.

Three releases of the demo CNN are built with `edgebuild all`: 1.0.0 as committed, 1.1.0 with only
the classifier head's weights changed (a head-only retrain) and 1.2.0 with every weight changed
(a full fine-tune; weights moved by noise of 1% of their mean magnitude, which changes every
mantissa as training does, without a minute of training per test run)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bundle_helpers import isolated_env, run_loader

ROOT = Path(__file__).resolve().parent.parent
PROJECT = """[project]
name = "fleet"
version = "{version}"

[models.digits]
source = "models/digits.onnx"
calibration = "data/digits_calibration.npz"
evaluation = "data/digits_eval.npz"
input_shapes = {{ input = [1, 1, 8, 8] }}

[targets.cpu-fp32]
model = "digits"
recipe = "onnxruntime"
precision = "fp32"
"""


def retrained(source: Path, dest: Path, only_head: bool, seed: int) -> None:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(source))
    rng = np.random.default_rng(seed)
    for init in model.graph.initializer:
        weights = numpy_helper.to_array(init)
        if weights.dtype != np.float32 or (only_head and not init.name.startswith("head.")):
            continue
        moved = weights + rng.normal(0, 0.01, weights.shape).astype(np.float32) * np.abs(weights).mean()
        init.CopyFrom(numpy_helper.from_array(moved.astype(np.float32), init.name))
    onnx.save(model, str(dest))


def edgebuild(project: Path, *args: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edgebuild", *args, "-C", str(project), "-q"],
        capture_output=True,
        text=True,
        env=env,
    )


@pytest.fixture(scope="module")
def releases(tmp_path_factory):
    project = tmp_path_factory.mktemp("fleet")
    shutil.copytree(ROOT / "data", project / "data")
    (project / "models").mkdir()
    original = ROOT / "models" / "digits.onnx"
    variants = {"1.0.0": None, "1.1.0": True, "1.2.0": False}
    for version, only_head in variants.items():
        target = project / "models" / "digits.onnx"
        if only_head is None:
            shutil.copy(original, target)
        else:
            retrained(original, target, only_head, seed=len(version))
        (project / "targets.toml").write_text(PROJECT.format(version=version))
        done = edgebuild(project, "all", "-j", "1")
        assert done.returncode == 0, done.stderr
    bundles = {v: project / "bundles" / f"fleet-cpu-fp32-{v}.tar.gz" for v in variants}
    return project, bundles, project / ".edgebuild" / "keys" / "edgebuild.pub.pem"


def make_delta(project, old, new, *extra):
    done = edgebuild(project, "delta", str(old), str(new), "--json", *extra)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_head_only_retrain_ships_only_the_changed_tensors(releases):
    project, bundles, _ = releases
    head = make_delta(project, bundles["1.0.0"], bundles["1.1.0"], "--max-ratio", "1")
    full = make_delta(project, bundles["1.0.0"], bundles["1.2.0"], "--max-ratio", "1")
    assert head["tensors"]["same"] >= 3 and head["tensors"]["changed"] >= 1
    assert full["tensors"]["same"] < head["tensors"]["same"]
    assert head["delta_bytes"] < full["delta_bytes"] < full["full_bytes"]


def test_a_delta_larger_than_the_limit_is_refused(releases):
    project, bundles, _ = releases
    refused = make_delta(
        project, bundles["1.0.0"], bundles["1.2.0"], "--max-ratio", "0.05", "--out", str(project / "refused")
    )
    assert refused["delta"] is None and "ship the full bundle" in refused["reason"]
    assert not list((project / "refused").glob("*.delta.tgz"))


def install(loader: Path, bundle: Path, root: Path, key: Path, env=None):
    return run_loader(loader, "install", str(bundle), "--root", str(root), "--key", str(key), env=env)


def files_of(folder: Path) -> dict:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="module")
def head_delta(releases, tmp_path_factory):
    project, bundles, _ = releases
    out = tmp_path_factory.mktemp("deltas")
    return Path(
        make_delta(project, bundles["1.0.0"], bundles["1.1.0"], "--max-ratio", "1", "--out", str(out))[
            "delta"
        ]
    )


def base_root(bundles, key, tmp_path, name="device"):
    root = tmp_path / name
    done = install(_loader_of(bundles["1.0.0"], tmp_path / f"{name}-loader"), bundles["1.0.0"], root, key)
    assert done.returncode == 0, done.stdout + done.stderr
    return root


def _loader_of(bundle: Path, dest: Path) -> Path:
    import tarfile

    dest.mkdir()
    with tarfile.open(bundle) as archive:
        archive.extractall(dest, filter="data")
    return next(dest.iterdir()) / "loader.py"


def test_installing_a_delta_gives_the_files_of_the_full_bundle(releases, head_delta, tmp_path):
    _, bundles, key = releases
    by_delta = base_root(bundles, key, tmp_path, "by-delta")
    done = install(by_delta / "active" / "loader.py", head_delta, by_delta, key)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "self-test passed" in done.stdout
    by_full = base_root(bundles, key, tmp_path, "by-full")
    assert install(by_full / "active" / "loader.py", bundles["1.1.0"], by_full, key).returncode == 0
    assert files_of(by_delta / "active") == files_of(by_full / "active")
    assert json.loads((by_delta / "active" / "manifest.json").read_text())["version"] == "1.1.0"


def test_a_delta_for_another_base_is_refused_naming_both(releases, tmp_path):
    project, bundles, key = releases
    later = Path(
        make_delta(
            project, bundles["1.1.0"], bundles["1.2.0"], "--max-ratio", "1", "--out", str(tmp_path / "d")
        )["delta"]
    )
    root = base_root(bundles, key, tmp_path)
    done = install(root / "active" / "loader.py", later, root, key)
    assert done.returncode == 1
    assert "from version 1.1.0" in done.stderr and "active version is 1.0.0" in done.stderr
    assert os.readlink(root / "active") == "versions/1.0.0"


def test_a_corrupted_or_foreign_delta_is_refused_and_active_is_unchanged(releases, head_delta, tmp_path):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from edgebuild.fleet.delta import make_delta as build_delta

    _, bundles, key = releases
    root = base_root(bundles, key, tmp_path)
    loader = root / "active" / "loader.py"
    corrupted = tmp_path / "corrupted.delta.tgz"
    data = bytearray(head_delta.read_bytes())
    data[len(data) // 2] ^= 0xFF
    corrupted.write_bytes(bytes(data))
    assert install(loader, corrupted, root, key).returncode == 1

    # signed by another key: make_delta itself refuses bundles it cannot verify with that key
    from edgebuild.bundle import BundleInvalid

    with pytest.raises(BundleInvalid):
        build_delta(bundles["1.0.0"], bundles["1.1.0"], tmp_path / "x", Ed25519PrivateKey.generate())
    # ...so re-sign a genuine delta's manifest with a foreign key
    foreign = _resigned(head_delta, tmp_path / "foreign.delta.tgz", Ed25519PrivateKey.generate())
    done = install(loader, foreign, root, key)
    assert done.returncode == 1 and "signature" in done.stderr
    assert os.readlink(root / "active") == "versions/1.0.0"
    assert run_loader(root / "active" / "loader.py", "selftest", "--key", str(key)).returncode == 0


def _resigned(delta: Path, out: Path, key) -> Path:
    import tarfile

    from edgebuild.bundle.archive import write_tar_gz

    files = {}
    with tarfile.open(delta) as archive:
        root = archive.getmembers()[0].name.split("/")[0]
        for member in archive.getmembers():
            if member.isfile():
                files[member.name.split("/", 1)[1]] = archive.extractfile(member).read()
    files["manifest.sig"] = key.sign(files["manifest.json"])
    write_tar_gz(out, root, files)
    return out


def test_a_killed_delta_install_leaves_a_working_active_version(releases, head_delta, tmp_path):
    _, bundles, key = releases
    root = base_root(bundles, key, tmp_path)
    loader = root / "active" / "loader.py"
    killed = 0
    for crash_at in range(1, 40):
        env = dict(isolated_env(), EDGEBUILD_LOADER_CRASH_AT=str(crash_at))
        done = install(loader, head_delta, root, key, env=env)
        if done.returncode == 0:
            break
        killed += 1
        active = run_loader(root / "active" / "loader.py", "selftest", "--key", str(key))
        assert active.returncode == 0, f"crash point {crash_at}: {active.stdout}{active.stderr}"
    assert killed >= 3 and done.returncode == 0, done.stdout + done.stderr
    again = install(root / "active" / "loader.py", head_delta, root, key)
    assert again.returncode == 0 and "already active" in again.stdout
    assert json.loads((root / "active" / "manifest.json").read_text())["version"] == "1.1.0"


def test_all_with_delta_from_writes_deltas_and_a_signed_deployment_manifest(releases, tmp_path):
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    project, bundles, key = releases
    done = edgebuild(project, "all", "--json", "--delta-from", "1.0.0,0.5.0", "--max-ratio", "1")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    deltas = summary["targets"]["cpu-fp32"]["deltas"]
    assert [d["from"] for d in deltas] == ["1.0.0"] and deltas[0]["to"] == "1.2.0"
    assert "no bundle of version 0.5.0" in done.stderr
    deployment = project / "bundles" / "deployment.json"
    data = deployment.read_bytes()
    load_pem_public_key(key.read_bytes()).verify(
        (project / "bundles" / "deployment.json.sig").read_bytes(), data
    )
    entry = json.loads(data)["targets"]["cpu-fp32"]
    assert (
        entry["version"] == "1.2.0" and entry["previous_version"] == "1.1.0" and entry["release_counter"] == 3
    )
    assert entry["deltas"][0]["from"] == "1.0.0" and entry["min_memory_mb"] > 0
    import yaml

    assert yaml.safe_load((project / "bundles" / "deployment.yaml").read_text()) == json.loads(data)
    assert json.loads(data)["expires"] > time.strftime(
        "%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 80 * 86400)
    )
