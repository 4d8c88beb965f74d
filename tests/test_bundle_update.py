"""The device update path of the generated loader: install, upgrade, anti-rollback (active version
and the root's monotonic record), targeting, the signed index's expiry, rollback, and cleanup of
what interrupted installs leave (tests/test_bundle_crash.py kills them at every file operation)."""

from __future__ import annotations

import json
import os
import time

import pytest

from edgebuild.bundle import update_index, write_bundle
from bundle_helpers import make_spec, run_loader


@pytest.fixture(scope="module")
def releases(work, keypair, tmp_path_factory):
    out = tmp_path_factory.mktemp("releases")
    made = {v: write_bundle(make_spec(work, version=v), out, keypair[0]) for v in ("0.9.0", "1.0.0", "2.0.0")}
    made["3.0.0-broken"] = write_bundle(
        make_spec(work, version="3.0.0", selftest=work / "selftest-wrong.npz"), out / "broken", keypair[0]
    )
    made["other-target"] = write_bundle(make_spec(work, version="5.0.0", target="gpu"), out, keypair[0])
    made["other-device"] = write_bundle(
        make_spec(work, version="2.1.0", device="rpi5"), out / "rpi", keypair[0]
    )
    made["1.0.0-rebuilt"] = write_bundle(
        make_spec(work, metrics={"latency_ms": 0.2}), out / "rebuilt", keypair[0]
    )
    return made


def links(root):
    return {
        name: os.readlink(root / name) if (root / name).is_symlink() else None
        for name in ("active", "previous")
    }


def test_install_upgrade_refuse_lower_and_roll_back(releases, unpacked, keypair, tmp_path):
    loader, key, root = unpacked / "loader.py", str(keypair[1]), tmp_path / "device"

    def install(version, *extra):
        return run_loader(
            loader, "install", str(releases[version]), "--root", str(root), "--key", key, *extra
        )

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
    assert other.returncode == 1 and "bundle is for demo/gpu" in other.stderr and "--retarget" in other.stderr

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
    accepted = run_loader(
        loader, "install", str(releases["1.0.0"]), "--root", str(tmp_path / "r"), "--unsigned-ok"
    )
    assert accepted.returncode == 0, accepted.stderr


def test_rollback_refuses_a_tampered_previous_version(releases, unpacked, keypair, tmp_path):
    loader, key, root = unpacked / "loader.py", str(keypair[1]), tmp_path / "device"
    for version in ("1.0.0", "2.0.0"):
        assert (
            run_loader(
                loader, "install", str(releases[version]), "--root", str(root), "--key", key
            ).returncode
            == 0
        )
    (root / "versions" / "1.0.0" / "model.onnx").write_bytes(b"not a model")
    back = run_loader(loader, "rollback", "--root", str(root))
    assert back.returncode == 1 and "mismatch for model.onnx" in back.stderr
    assert links(root)["active"] == "versions/2.0.0"


def _install(loader, bundle, root, key, *extra):
    return run_loader(loader, "install", str(bundle), "--root", str(root), "--key", key, *extra)


def test_highest_version_record_survives_rollback_and_a_deleted_active_link(
    releases, unpacked, keypair, tmp_path
):
    loader, key, root = unpacked / "loader.py", str(keypair[1]), tmp_path / "device"
    for version in ("0.9.0", "2.0.0"):
        assert _install(loader, releases[version], root, key).returncode == 0
    assert run_loader(loader, "rollback", "--root", str(root)).returncode == 0
    assert links(root)["active"] == "versions/0.9.0"
    # 1.0.0 is above the active 0.9.0 but below the 2.0.0 this device once ran
    refused = _install(loader, releases["1.0.0"], root, key)
    assert refused.returncode == 1 and "2.0.0 was installed on this device before" in refused.stderr
    (root / "active").unlink()
    assert _install(loader, releases["1.0.0"], root, key).returncode == 1, (
        "deleting `active` reset the record"
    )
    assert json.loads((root / "installed.json").read_text())["highest"] == {"demo/cpu-fp32": "2.0.0"}
    forced = _install(loader, releases["1.0.0"], root, key, "--force")
    assert forced.returncode == 0, forced.stderr
    status = run_loader(loader, "status", "--root", str(root))
    assert "active: 1.0.0" in status.stdout and "highest installed: demo/cpu-fp32 2.0.0" in status.stdout


def test_another_target_or_device_needs_retarget_and_rollback_never_crosses(
    releases, unpacked, keypair, tmp_path
):
    loader, key, root = unpacked / "loader.py", str(keypair[1]), tmp_path / "device"
    assert _install(loader, releases["1.0.0"], root, key).returncode == 0
    device = _install(loader, releases["other-device"], root, key, "--force")
    assert device.returncode == 1 and "device rpi5" in device.stderr and "--retarget" in device.stderr
    (root / "active").unlink()  # the root's target lives in its record, not in the link
    target = _install(loader, releases["other-target"], root, key)
    assert target.returncode == 1 and "bundle is for demo/gpu" in target.stderr
    switched = _install(loader, releases["other-target"], root, key, "--retarget")
    assert switched.returncode == 0, switched.stderr
    assert links(root) == {"active": "versions/5.0.0", "previous": None}
    back = run_loader(loader, "rollback", "--root", str(root))
    assert back.returncode == 1 and "nothing to roll back to" in back.stderr
    record = json.loads((root / "installed.json").read_text())
    assert (record["target"], record["highest"]) == ("gpu", {"demo/cpu-fp32": "1.0.0", "demo/gpu": "5.0.0"})


def test_rollback_refuses_a_previous_version_of_another_target(releases, unpacked, keypair, tmp_path):
    loader, key, root = unpacked / "loader.py", str(keypair[1]), tmp_path / "device"
    assert _install(loader, releases["1.0.0"], root, key).returncode == 0
    other = tmp_path / "other"
    assert _install(loader, releases["other-target"], other, key).returncode == 0
    # a hand-made `previous` pointing at another target's folder
    os.rename(other / "versions" / "5.0.0", root / "versions" / "5.0.0")
    (root / "previous").symlink_to("versions/5.0.0")
    back = run_loader(loader, "rollback", "--root", str(root))
    assert back.returncode == 1 and "rollback never crosses targets" in back.stderr
    assert links(root)["active"] == "versions/1.0.0"


def test_force_reinstall_of_the_active_version_switches_to_a_new_folder(
    releases, unpacked, keypair, tmp_path
):
    loader, key, root = unpacked / "loader.py", str(keypair[1]), tmp_path / "device"
    for version in ("0.9.0", "1.0.0"):
        assert _install(loader, releases[version], root, key).returncode == 0
    same = _install(loader, releases["1.0.0-rebuilt"], root, key)
    assert same.returncode == 1 and "use --force" in same.stderr
    forced = _install(loader, releases["1.0.0-rebuilt"], root, key, "--force")
    assert forced.returncode == 0, forced.stderr
    # the folder `active` pointed at is never moved: the new copy gets its own name
    assert links(root) == {"active": "versions/1.0.0~2", "previous": "versions/0.9.0"}
    assert json.loads((root / "active" / "manifest.json").read_text())["metrics"]["latency_ms"] == 0.2
    assert sorted(p.name for p in (root / "versions").iterdir()) == ["0.9.0", "1.0.0~2"]
    assert run_loader(loader, "status", "--root", str(root)).stdout.startswith("active: 1.0.0\n")


def test_install_removes_what_interrupted_installs_left(releases, unpacked, keypair, tmp_path):
    loader, key, root = unpacked / "loader.py", str(keypair[1]), tmp_path / "device"
    assert _install(loader, releases["1.0.0"], root, key).returncode == 0
    for stale in ("stage-a1b2c3", "stage-d4e5f6/demo-cpu-fp32-2.0.0"):
        (root / "staging" / stale).mkdir(parents=True)
        (root / "staging" / stale / "model.onnx").write_bytes(b"\0" * 1000)
    (root / ".previous.4242.tmp").symlink_to("versions/1.0.0")
    (root / ".installed.json.tmp").write_text("{")
    (root / "switch.json").write_text('{"active": "1.0.0", "previous": 5}')  # a journal no kill can leave
    (root / "versions" / "9.9.9").mkdir()
    assert _install(loader, releases["2.0.0"], root, key).returncode == 0
    assert list((root / "staging").iterdir()) == []
    assert sorted(p.name for p in root.iterdir()) == [
        ".lock",
        "active",
        "installed.json",
        "previous",
        "staging",
        "versions",
    ]
    assert sorted(p.name for p in (root / "versions").iterdir()) == ["1.0.0", "2.0.0"]


@pytest.fixture(scope="module")
def indexed(releases, keypair, tmp_path_factory):
    """bundles/ with 1.0.0 and 2.0.0 and three indexes: fresh, expired, and one without 2.0.0."""
    folder = tmp_path_factory.mktemp("indexed")
    out = {}
    for name, versions, now in (
        ("fresh", ("1.0.0", "2.0.0"), None),
        ("expired", ("1.0.0", "2.0.0"), time.time() - 100 * 86400),
        ("partial", ("1.0.0",), None),
    ):
        (folder / name).mkdir()
        for version in versions:
            os.link(releases[version], folder / name / releases[version].name)
        out[name] = update_index(folder / name, keypair[0], now=now)
    return out


def test_install_with_an_index_checks_its_signature_expiry_and_listing(
    releases, indexed, unpacked, keypair, other_keypair, tmp_path
):
    loader, key, root = unpacked / "loader.py", str(keypair[1]), tmp_path / "device"
    index = json.loads(indexed["fresh"].read_text())
    assert index["expires"] > time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 89 * 86400))
    expired = _install(loader, releases["1.0.0"], root, key, "--index", str(indexed["expired"]))
    assert expired.returncode == 1 and "index.json expired at" in expired.stderr
    assert not (root / "active").exists()
    unlisted = _install(loader, releases["2.0.0"], root, key, "--index", str(indexed["partial"]))
    assert (
        unlisted.returncode == 1
        and "demo-cpu-fp32-2.0.0.tar.gz is not listed in index.json" in unlisted.stderr
    )
    foreign = _install(
        loader, releases["1.0.0"], root, str(other_keypair[1]), "--index", str(indexed["fresh"])
    )
    assert foreign.returncode == 1 and "signature of index.json does not verify" in foreign.stderr
    ok = _install(loader, releases["2.0.0"], root, key, "--index", str(indexed["fresh"]))
    assert ok.returncode == 0, ok.stderr
    keyless = run_loader(
        loader,
        "install",
        str(releases["2.0.0"]),
        "--root",
        str(root),
        "--unsigned-ok",
        "--index",
        str(indexed["fresh"]),
    )
    assert keyless.returncode == 2 and "--index needs --key" in keyless.stderr


def test_index_expiry_setting_and_refresh(keypair, bundle, tmp_path):
    from conftest import ort_demo_toml, run_cli, write_demo
    from edgebuild.bundling import signed_file_needs_refresh

    project = write_demo(tmp_path / "demo", ort_demo_toml("\n[bundle]\nindex_expiry_days = 0\n"))
    bad = run_cli(project, "graph")
    assert bad.rc == 2 and "bundle.index_expiry_days" in bad.stderr and "Traceback" not in bad.stderr
    folder = tmp_path / "bundles"
    folder.mkdir()
    os.link(bundle, folder / bundle.name)
    index = update_index(folder, keypair[0], expiry_days=10)
    expires = json.loads(index.read_text())["expires"]
    assert time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 9 * 86400)) < expires
    assert expires <= time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 10 * 86400))
    assert not signed_file_needs_refresh(index, 10)
    assert signed_file_needs_refresh(index, 30), "10 days left of a 30-day lifetime: past half, re-sign"
    update_index(folder, keypair[0], expiry_days=10, now=time.time() - 6 * 86400)
    assert signed_file_needs_refresh(index, 10)
