"""Toolchain environments: spec validation, real venv creation with pip, reuse, locking, listing.

These create real (small) virtualenvs from PyPI under a temporary EDGEBUILD_HOME; the one heavy
environment (onnx2tf) is exercised by tests/test_tflite.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgebuild import toolchain
from edgebuild.toolchain import ToolchainError

SMALL = {
    "name": "tiny",
    "python": f"{sys.version_info.major}.{sys.version_info.minor}",
    "requirements": ["six==1.17.0"],
    "no_deps": ["idna==3.10"],
}


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    path = tmp_path_factory.mktemp("edgebuild-home")
    old = os.environ.get("EDGEBUILD_HOME")
    os.environ["EDGEBUILD_HOME"] = str(path)
    yield path
    if old is None:
        os.environ.pop("EDGEBUILD_HOME", None)
    else:
        os.environ["EDGEBUILD_HOME"] = old


@pytest.fixture(scope="module")
def tiny_env(home):
    return toolchain.ensure(SMALL)


@pytest.mark.parametrize(
    "spec, words",
    [
        ({"name": "x", "requirements": ["numpy>=1"]}, ["requirements", "numpy>=1", "exact pin"]),
        ({"name": "x", "requirements": ["a==1"], "pins": []}, ["unknown key 'pins'"]),
        ({"name": "x y", "requirements": ["a==1"]}, ["name"]),
        ({"name": "x", "python": "three", "requirements": ["a==1"]}, ["python", "three"]),
        ({"name": "x"}, ["at least one requirement"]),
        ({"name": "x", "no_deps": "a==1"}, ["no_deps", "list"]),
    ],
)
def test_invalid_specs_name_the_key(spec, words):
    with pytest.raises(ToolchainError) as err:
        toolchain.validate_spec(spec, where="recipes/x.toml [toolchain]")
    message = str(err.value)
    assert message.startswith("recipes/x.toml [toolchain]")
    for word in words:
        assert word in message
    assert "\n" not in message


def test_spec_hash_ignores_requirement_order_but_not_versions():
    a = {"name": "t", "python": "3.11", "requirements": ["a==1", "b==2"]}
    b = {"name": "t", "python": "3.11", "requirements": ["b==2", "a==1"]}
    c = {"name": "t", "python": "3.11", "requirements": ["a==1", "b==3"]}
    d = {"name": "t", "python": "3.12", "requirements": ["a==1", "b==2"]}
    assert toolchain.spec_hash(a) == toolchain.spec_hash(b)
    assert len({toolchain.spec_hash(a), toolchain.spec_hash(c), toolchain.spec_hash(d)}) == 3


def test_default_toolchain_is_this_interpreter():
    env = toolchain.ensure({"name": "default"})
    assert env.python == Path(sys.executable)
    assert env.versions["python"] == "%d.%d.%d" % sys.version_info[:3]
    assert env.root is None


def test_ensure_creates_a_real_environment_with_recorded_versions(home, tiny_env):
    assert tiny_env.root == home / "toolchains" / f"tiny-{toolchain.spec_hash(SMALL)}"
    assert tiny_env.versions["six"] == "1.17.0"
    assert tiny_env.versions["idna"] == "3.10"
    assert tiny_env.versions["python"].startswith(SMALL["python"] + ".")
    out = subprocess.run(
        [str(tiny_env.python), "-c", "import six, idna; print(six.__version__, idna.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out == ["1.17.0", "3.10"]
    # built in a temporary folder and renamed: scripts must name the final folder
    pip_script = (tiny_env.root / "bin" / "pip").read_text().splitlines()[0]
    assert pip_script == f"#!{tiny_env.root}/bin/python" or str(tiny_env.root) in pip_script
    assert (
        subprocess.run([str(tiny_env.root / "bin" / "pip"), "--version"], capture_output=True).returncode == 0
    )
    assert not [p for p in (home / "toolchains").iterdir() if ".tmp-" in p.name or ".trash-" in p.name]


def test_second_ensure_reuses_without_reinstalling(tiny_env):
    stamp = (tiny_env.root / "versions.json").stat().st_mtime_ns
    started = time.perf_counter()
    again = toolchain.ensure(SMALL)
    assert time.perf_counter() - started < 1.0
    assert again == tiny_env
    assert (tiny_env.root / "versions.json").stat().st_mtime_ns == stamp
    assert toolchain.lookup(SMALL) == tiny_env
    assert toolchain.lookup(dict(SMALL, requirements=["six==1.16.0"])) is None


def test_fingerprint_follows_versions(tiny_env):
    other = toolchain.Environment("tiny", tiny_env.python, dict(tiny_env.versions, six="1.16.0"))
    assert tiny_env.fingerprint() != other.fingerprint()
    assert (
        tiny_env.fingerprint() == toolchain.Environment("x", Path("/"), dict(tiny_env.versions)).fingerprint()
    )


def test_list_environments(tiny_env):
    rows = toolchain.list_environments()
    row = next(r for r in rows if r["path"] == str(tiny_env.root))
    assert row["name"] == "tiny" and row["spec_hash"] == toolchain.spec_hash(SMALL)
    assert "six==1.17.0" in row["requirements"] and row["packages"] >= 2


def test_concurrent_creation_builds_once(home):
    spec = dict(SMALL, name="race", no_deps=[])
    code = (
        "import json, sys; from edgebuild import toolchain; "
        "e = toolchain.ensure(json.loads(sys.argv[1])); print(e.root)"
    )
    env = dict(os.environ, PYTHONPATH=toolchain.worker_pythonpath())
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, json.dumps(spec)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    roots = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        roots.append(out.strip())
    assert roots[0] == roots[1]
    made = [p for p in (home / "toolchains").iterdir() if p.name.startswith("race-")]
    assert len(made) == 1
    assert not [p for p in (home / "toolchains").iterdir() if ".tmp-" in p.name]


def test_failed_install_leaves_nothing_and_says_why(home):
    spec = {"name": "broken", "python": SMALL["python"], "requirements": ["six==0.0.0.404"]}
    with pytest.raises(ToolchainError) as err:
        toolchain.ensure(spec)
    assert "installing toolchain 'broken' failed" in str(err.value)
    assert toolchain.lookup(spec) is None
    assert not [
        p
        for p in (home / "toolchains").iterdir()
        if p.name.startswith((".broken-", "broken-")) and not p.name.endswith(".lock")
    ]


def test_remove_by_name(home):
    spec = dict(SMALL, name="gone", no_deps=[])
    env = toolchain.ensure(spec)
    assert env.root.is_dir()
    assert toolchain.remove("gone") == [env.root]
    assert not env.root.exists() and toolchain.lookup(spec) is None


def test_steps_import_in_a_bare_toolchain_interpreter(tiny_env):
    """Workers run `python -m edgebuild.worker` in environments where edgebuild is not installed:
    the step modules must import there with the standard library only."""
    code = (
        "import edgebuild.steps.tflite as t, edgebuild.steps.edgetpu as e, edgebuild.worker; "
        "print(sorted(t.STEPS) + sorted(e.STEPS))"
    )
    out = subprocess.run(
        [str(tiny_env.python), "-c", code],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=toolchain.worker_pythonpath()),
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [
        "['tflite.convert',",
        "'tflite.inspect',",
        "'tflite.verify',",
        "'edgetpu.compile']",
    ]


def test_find_python_other_version():
    other = "3.12" if sys.version_info[:2] != (3, 12) else "3.11"
    try:
        exe = toolchain.find_python(other)
    except ToolchainError as exc:
        assert f"Python {other}" in str(exc)
        pytest.skip(f"Python {other} is not installed on this machine")
    out = subprocess.run(
        [str(exe), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert out == other
    with pytest.raises(ToolchainError, match="Python 3.99"):
        toolchain.find_python("3.99")
