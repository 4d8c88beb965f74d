"""Kills, concurrent builds and failing targets: a build loses nothing and blocks only what it must."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from conftest import ORT_TARGETS, ort_demo_toml, run_cli, write_demo


def _artifacts(project: Path) -> dict[str, bytes]:
    return {
        p.relative_to(project).as_posix(): p.read_bytes()
        for p in sorted((project / "build").rglob("*"))
        if p.is_file()
    }


def _assert_cache_consistent(project: Path) -> None:
    """Every blob's name is its content hash; every action entry's outputs exist."""
    import json

    cache = project / ".edgebuild" / "cache"
    for blob in (cache / "cas").glob("*/*"):
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == blob.name, f"partial blob {blob}"
    for entry in (cache / "ac").glob("*/*"):
        data = json.loads(entry.read_text())
        for record in data["outputs"].values():
            assert (cache / "cas" / record["digest"][:2] / record["digest"]).is_file()


def test_sigkill_mid_build_loses_nothing(tmp_path, built_demo):
    project = write_demo(tmp_path / "p")
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgebuild", "build", "-j", "1", "-q", "-C", str(project)],
        start_new_session=True,
    )
    ac = project / ".edgebuild" / "cache" / "ac"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(ac.glob("*/*"))) < 3:  # some steps done, more to go
        time.sleep(0.05)
    assert proc.poll() is None, "the build finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)  # the CLI and its worker
    proc.wait()

    _assert_cache_consistent(project)
    leftovers = (
        [p for p in (project / "build").rglob("*") if p.name.endswith(".tmp")]
        if (project / "build").exists()
        else []
    )
    assert leftovers == []

    result = run_cli(project, "all", "--json")
    assert result.rc == 0, result.stderr
    assert 0 < result.json["steps"]["run"] < result.json["steps"]["total"]  # finished steps were kept
    assert not list((project / ".edgebuild" / "cache" / "tmp").glob("*"))  # the dead build's temp is gone
    assert _artifacts(project) == _artifacts(built_demo)


def test_two_concurrent_builds_share_work(tmp_path, built_demo):
    project = write_demo(tmp_path / "p")
    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(lambda _: run_cli(project, "all", "--json", "-j", "2"), range(2))
    assert first.rc == 0, first.stderr
    assert second.rc == 0, second.stderr
    total = first.json["steps"]["total"]
    # the per-key lock means each step ran in exactly one of the two builds
    assert first.json["steps"]["run"] + second.json["steps"]["run"] == total
    assert _artifacts(project) == _artifacts(built_demo)
    for target in ORT_TARGETS:
        assert first.json["targets"][target]["bundle"] == second.json["targets"][target]["bundle"]
    _assert_cache_consistent(project)


def test_failing_target_does_not_stop_independent_ones(tmp_path):
    # a gate no int8 model can meet fails cpu-int8; fp32 and fp16 still build and bundle
    text = ort_demo_toml().replace('precision = "int8"', 'precision = "int8"\nmin_cosine = 0.99999999')
    project = write_demo(tmp_path / "p", text)
    result = run_cli(project, "all", "--json")
    assert result.rc == 1
    doc = result.json
    assert doc["ok"] is False
    failed = doc["targets"]["cpu-int8"]
    assert failed["status"] == "failed"
    assert failed["failed_step"] == "verify-int8"
    assert "cosine_min" in failed["reason"] and "breaks gate min_cosine = 0.99999999" in failed["reason"]
    assert failed["log"].endswith("verify-int8.log") and Path(failed["log"]).is_file()
    assert failed["bundle"] is None
    for target in ("cpu-fp32", "cpu-fp16"):
        assert doc["targets"][target]["status"] == "built"
        assert doc["targets"][target]["bundle"]


def test_crashing_worker_is_reported_with_its_log(tmp_path):
    project = write_demo(tmp_path / "p", ort_demo_toml())
    (project / "models" / "digits.onnx").write_bytes(b"not an onnx file")
    result = run_cli(project, "build", "--json", "cpu-fp32")
    assert result.rc == 1
    target = result.json["targets"]["cpu-fp32"]
    assert target["failed_step"] == "check"
    assert "cannot read" in target["reason"] and "log:" in target["reason"]
