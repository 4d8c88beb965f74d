"""The executors package: the registry by `--executor` name or URL scheme, the one worker launcher
all executors share, and the shared-cache URL resolved once for the cache and the executor."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest

from conftest import run_cli, write_demo
from edgebuild.errors import ConfigError
from edgebuild.executors import make_executor
from edgebuild.executors.inline import InlineExecutor
from edgebuild.executors.launch import run_worker
from edgebuild.executors.local import LocalExecutor
from edgebuild.project import load_project
from edgebuild.session import REMOTE_ENV, resolve_remote


def test_registry_picks_by_name_or_scheme():
    local = make_executor("local", 3)
    assert isinstance(local, LocalExecutor) and local.capacity == 3
    assert isinstance(make_executor("inline", 3), InlineExecutor)
    for spec in ("ssh://host:22", "dask", "remote"):
        with pytest.raises(
            ConfigError, match=f"unknown executor '{spec}': use local, inline or dask://HOST:PORT"
        ):
            make_executor(spec, 1)
    with pytest.raises(ConfigError, match="HOST:PORT"):
        make_executor("dask://nowhere", 1, "http://127.0.0.1:9")
    with pytest.raises(ConfigError, match="moves files through a shared cache"):
        make_executor("dask://127.0.0.1:9", 1, None)


def test_launcher_reads_the_worker_result_and_reports_a_dead_worker(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    request = {"step": "no.such-step", "params": {}, "inputs": {}, "upstream": {}, "out": str(out)}
    done = run_worker(sys.executable, request, tmp_path, tmp_path / "logs" / "step.log")
    assert done.code == 0 and done.result["status"] == "failed"  # the real worker answered
    assert "no.such-step" in done.result["message"]
    assert (tmp_path / "logs" / "step.log").is_file()
    # an interpreter that dies before writing result.json (an OOM kill, a segfault)
    doomed = tmp_path / "doomed"
    doomed.write_text("#!/bin/sh\nkill -9 $$\n")
    doomed.chmod(0o755)
    (tmp_path / "result.json").unlink()
    died = run_worker(str(doomed), request, tmp_path, tmp_path / "doomed.log", new_session=True)
    assert died.result is None and died.how() == "killed by signal 9"


@pytest.fixture
def project_with_remote(tmp_path):
    def make(remote: str | None):
        text = (
            '[project]\nname = "p"\nversion = "1.0.0"\n\n[models.digits]\nsource = "models/digits.onnx"\n\n'
            '[targets.cpu]\nmodel = "digits"\nrecipe = "onnxruntime"\n'
        )
        if remote is not None:
            text += f'\n[cache]\nremote = "{remote}"\n'
        return load_project(write_demo(tmp_path / f"p{len(list(tmp_path.iterdir()))}", text))

    return make


def test_remote_url_precedence(project_with_remote, monkeypatch):
    monkeypatch.setenv(REMOTE_ENV, "http://from-env:1")
    configured, bare = project_with_remote("http://from-toml:1"), project_with_remote(None)

    def resolve(cli, project):
        setting = resolve_remote(SimpleNamespace(remote_cache=cli), project)
        return setting.url, setting.source, setting.read_through

    assert resolve("http://from-cli:1", configured) == ("http://from-cli:1", "--remote-cache", True)
    assert resolve("", configured) == (None, None, False)  # '' turns every source off
    assert resolve(None, configured) == ("http://from-toml:1", "cache.remote", True)
    # the variable alone names the store of a distributed executor, not a read-through cache
    assert resolve(None, bare) == ("http://from-env:1", REMOTE_ENV, False)
    monkeypatch.delenv(REMOTE_ENV)
    assert resolve(None, bare) == (None, None, False)
    with pytest.raises(ConfigError, match="^--remote-cache: remote cache URL must look like"):
        resolve("ftp://x", bare)
    with pytest.raises(ConfigError, match=r"targets.toml:\d+: cache.remote: remote cache URL must look like"):
        resolve(None, project_with_remote("nope"))


def test_empty_remote_cache_option_turns_the_variable_off_for_dask_too(tmp_path):
    project = write_demo(tmp_path / "demo")
    result = run_cli(
        project,
        "build",
        "--executor",
        "dask://127.0.0.1:9",
        "--remote-cache",
        "",
        env={REMOTE_ENV: "http://127.0.0.1:9"},
    )
    assert result.rc == 2
    assert result.stderr.startswith("edgebuild: error: the dask executor moves files through a shared cache")
    assert not (project / "build").exists()
