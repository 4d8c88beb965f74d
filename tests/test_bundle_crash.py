"""Fault injection on the device update path: `install`, `install --force` and `rollback` are
killed before each of their file-system changes in turn (the loader's EDGEBUILD_LOADER_CRASH_AT
hook ends the process with os._exit, like a power cut: no cleanup, no finally blocks). After every
kill, `active` must pass the self-test and be the old or the new version, `previous` must differ
from it, and the next install or rollback must repair the root and succeed."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys

import pytest

from edgebuild.bundle import write_bundle
from bundle_helpers import isolated_env, make_spec, run_loader


@pytest.fixture(scope="module")
def releases(work, keypair, tmp_path_factory):
    out = tmp_path_factory.mktemp("crash-releases")
    made = {v: write_bundle(make_spec(work, version=v), out, keypair[0]) for v in ("1.0.0", "2.0.0")}
    made["2.0.0-rebuilt"] = write_bundle(
        make_spec(work, version="2.0.0", metrics={"latency_ms": 0.2}), out / "rebuilt", keypair[0]
    )
    return made


@pytest.fixture(scope="module")
def loader_module(unpacked):
    """The generated loader imported here, to run the self-test of `active` in-process (fast)."""
    spec = importlib.util.spec_from_file_location("crash_test_loader", unpacked / "loader.py")
    module = importlib.util.module_from_spec(spec)
    write_bytecode = sys.dont_write_bytecode
    spec.loader.exec_module(module)
    sys.dont_write_bytecode = write_bytecode  # the loader turns it off for its own process
    return module


@pytest.fixture(scope="module")
def roots(releases, unpacked, keypair, tmp_path_factory):
    """Device roots to copy: "one" has 1.0.0 installed; "two" has 1.0.0 then 2.0.0 (previous 1.0.0)."""
    made = {}
    for name, versions in (("one", ("1.0.0",)), ("two", ("1.0.0", "2.0.0"))):
        root = tmp_path_factory.mktemp("crash-root") / name
        for version in versions:
            done = run_loader(
                unpacked / "loader.py",
                "install",
                str(releases[version]),
                "--root",
                str(root),
                "--key",
                str(keypair[1]),
            )
            assert done.returncode == 0, done.stderr
        made[name] = root
    return made


def _run(loader, args, crash_at=None):
    env = isolated_env()
    if crash_at is not None:
        env["EDGEBUILD_LOADER_CRASH_AT"] = str(crash_at)
    return subprocess.run(
        [sys.executable, str(loader), *args], capture_output=True, text=True, timeout=300, env=env
    )


def _state(root):
    def target(name):
        return os.readlink(root / name) if (root / name).is_symlink() else None

    return target("active"), target("previous")


def _version(root, name):
    return json.loads((root / name / "manifest.json").read_text())["version"]


def _check_after_kill(root, loader_module, key, allowed_versions):
    active, previous = _state(root)
    assert active is not None, "a kill left no `active` link"
    assert (root / active).is_dir(), f"`active` dangles: {active}"
    assert previous != active
    assert _version(root, "active") in allowed_versions
    passed, report = loader_module.Model(root / "active", public_key=key).selftest()
    assert passed, report


def _assert_clean(root):
    assert list((root / "staging").iterdir()) == []
    assert not [p.name for p in root.iterdir() if p.name.endswith(".tmp") or p.name == "switch.json"]
    linked = {os.readlink(root / n).split("/")[1] for n in ("active", "previous") if (root / n).is_symlink()}
    assert {p.name for p in (root / "versions").iterdir()} == linked


SCENARIOS = {
    # name: (root to start from, command, versions `active` may show after a kill, final (active, previous))
    "install": ("one", ["install", "{2.0.0}"], {"1.0.0", "2.0.0"}, ("2.0.0", "1.0.0")),
    "install --force": ("two", ["install", "{2.0.0-rebuilt}", "--force"], {"2.0.0"}, ("2.0.0", "1.0.0")),
    "rollback": ("two", ["rollback"], {"1.0.0", "2.0.0"}, ("1.0.0", None)),
}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_a_kill_at_any_file_operation_leaves_a_working_root(
    scenario, roots, releases, unpacked, loader_module, keypair, tmp_path
):
    start, command, allowed, final = SCENARIOS[scenario]
    key = str(keypair[1])
    loader = unpacked / "loader.py"
    kills = 0
    for crash_at in range(1, 200):
        root = tmp_path / f"kill-{crash_at}"
        shutil.copytree(roots[start], root, symlinks=True)
        args = [str(releases[a[1:-1]]) if a.startswith("{") else a for a in command] + ["--root", str(root)]
        if command[0] == "install":
            args += ["--key", key]
        killed = _run(loader, args, crash_at)
        if killed.returncode == 0:
            break  # the operation finished before reaching this many file operations
        assert killed.returncode == 137, (crash_at, killed.stdout, killed.stderr)
        kills += 1
        _check_after_kill(root, loader_module, key, allowed)
        # the next operation repairs whatever the kill left, then does its job
        expected = final
        rebuilt = json.loads((root / "active" / "manifest.json").read_text())["metrics"]["latency_ms"] == 0.2
        if scenario == "rollback" and _version(root, "active") == "1.0.0":
            later = _run(loader, ["install", str(releases["2.0.0"]), "--root", str(root), "--key", key])
            expected = ("2.0.0", "1.0.0")
        elif scenario == "install --force" and rebuilt:
            # the switch happened: a rollback must now work (forcing the install again would only
            # repeat its self-test)
            later = _run(loader, ["rollback", "--root", str(root)])
            expected = ("1.0.0", None)
        else:
            later = _run(loader, args)
        assert later.returncode == 0, (crash_at, later.stdout, later.stderr)
        previous = _version(root, "previous") if (root / "previous").exists() else None
        assert (_version(root, "active"), previous) == expected, crash_at
        if scenario == "install --force" and not rebuilt:
            metrics = json.loads((root / "active" / "manifest.json").read_text())["metrics"]
            assert metrics["latency_ms"] == 0.2, crash_at
        _assert_clean(root)
        shutil.rmtree(root)
    assert kills >= 10, f"only {kills} kill points: is the crash hook still called?"
    print(f"{scenario}: killed at {kills} file operations")
