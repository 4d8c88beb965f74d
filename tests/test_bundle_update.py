"""The device update path of the generated loader: install, upgrade, anti-rollback, rollback."""
from __future__ import annotations

import os

import pytest

from edgebuild.bundle import write_bundle
from bundle_helpers import make_spec, run_loader


@pytest.fixture(scope="module")
def releases(work, keypair, tmp_path_factory):
    out = tmp_path_factory.mktemp("releases")
    made = {v: write_bundle(make_spec(work, version=v), out, keypair[0]) for v in ("0.9.0", "1.0.0", "2.0.0")}
    made["3.0.0-broken"] = write_bundle(make_spec(work, version="3.0.0", selftest=work / "selftest-wrong.npz"),
                                        out / "broken", keypair[0])
    made["other-target"] = write_bundle(make_spec(work, version="5.0.0", target="gpu"), out, keypair[0])
    return made


def links(root):
    return {name: os.readlink(root / name) if (root / name).is_symlink() else None for name in ("active", "previous")}


def test_install_upgrade_refuse_lower_and_roll_back(releases, unpacked, keypair, tmp_path):
    loader, key, root = unpacked / "loader.py", str(keypair[1]), tmp_path / "device"

    def install(version, *extra):
        return run_loader(loader, "install", str(releases[version]), "--root", str(root), "--key", key, *extra)

    first = install("1.0.0")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "self-test passed" in first.stdout
    assert links(root) == {"active": "versions/1.0.0", "previous": None}
    assert (root / "active" / "model.onnx").is_file()

    assert install("2.0.0").returncode == 0
    assert links(root) == {"active": "versions/2.0.0", "previous": "versions/1.0.0"}
    assert run_loader(root / "active" / "loader.py", "selftest", "--key", key).returncode == 0

    again = install("2.0.0")
    assert again.returncode == 0 and "already active" in again.stdout

    lower = install("0.9.0")
    assert lower.returncode == 1 and "lower than the active version 2.0.0" in lower.stderr
    assert links(root)["active"] == "versions/2.0.0"

    broken = install("3.0.0-broken")
    assert broken.returncode == 1 and "self-test of 3.0.0 failed" in broken.stderr
    assert links(root) == {"active": "versions/2.0.0", "previous": "versions/1.0.0"}
    assert sorted(p.name for p in (root / "versions").iterdir()) == ["1.0.0", "2.0.0"]

    other = install("other-target")
    assert other.returncode == 1 and "bundle is for demo/gpu" in other.stderr

    back = run_loader(loader, "rollback", "--root", str(root))
    assert back.returncode == 0, back.stderr
    assert links(root) == {"active": "versions/1.0.0", "previous": None}
    assert sorted(p.name for p in (root / "versions").iterdir()) == ["1.0.0"]
    nothing = run_loader(loader, "rollback", "--root", str(root))
    assert nothing.returncode == 1 and "nothing to roll back to" in nothing.stderr

    forced = install("0.9.0", "--force")
    assert forced.returncode == 0, forced.stderr
    assert links(root) == {"active": "versions/0.9.0", "previous": "versions/1.0.0"}
    status = run_loader(loader, "status", "--root", str(root))
    assert "active: 0.9.0" in status.stdout and "previous: 1.0.0" in status.stdout


def test_install_requires_a_key_unless_told_otherwise(releases, unpacked, tmp_path):
    loader = unpacked / "loader.py"
    refused = run_loader(loader, "install", str(releases["1.0.0"]), "--root", str(tmp_path / "r"))
    assert refused.returncode == 2 and "--key" in refused.stderr
    accepted = run_loader(loader, "install", str(releases["1.0.0"]), "--root", str(tmp_path / "r"), "--unsigned-ok")
    assert accepted.returncode == 0, accepted.stderr


def test_rollback_refuses_a_tampered_previous_version(releases, unpacked, keypair, tmp_path):
    loader, key, root = unpacked / "loader.py", str(keypair[1]), tmp_path / "device"
    for version in ("1.0.0", "2.0.0"):
        assert run_loader(loader, "install", str(releases[version]), "--root", str(root), "--key", key).returncode == 0
    (root / "versions" / "1.0.0" / "model.onnx").write_bytes(b"not a model")
    back = run_loader(loader, "rollback", "--root", str(root))
    assert back.returncode == 1 and "mismatch for model.onnx" in back.stderr
    assert links(root)["active"] == "versions/2.0.0"
