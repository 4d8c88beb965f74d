"""The shared remote cache against a real nginx (WebDAV PUT) on loopback, the way teams run one:
a clean checkout builds entirely from it, a corrupted blob is caught and rebuilt, a stopped server
leaves a local build and one warning. nginx comes from Debian's nginx-light (.ci/run installs it)."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from conftest import ort_demo_toml, run_cli, write_demo
from nginx_server import NGINX, TOKEN, free_port, start_nginx
from edgebuild.errors import ConfigError
from edgebuild.remote_cache import BlobCorrupted, HttpCache, RemoteUnavailable


@pytest.fixture(scope="session")
def nginx(tmp_path_factory):
    server = start_nginx(tmp_path_factory.mktemp("nginx"))
    yield server
    server.stop()


CACHE_KEY = "team-ci-writers-" + "7" * 40  # EDGEBUILD_REMOTE_CACHE_KEY of the trusted writers


def clean_env(key: str | None = CACHE_KEY) -> dict:
    """Each checkout keeps its own local cache, as on a fresh machine; by default it holds the
    writers' key, so entries are authenticated and every one of them may be taken."""
    return {
        "EDGEBUILD_CACHE_DIR": "",
        "EDGEBUILD_REMOTE_CACHE_HEADER": "",
        "EDGEBUILD_REMOTE_CACHE_KEY": key or "",
    }


def artifact_bytes(project: Path, doc: dict) -> dict[str, str]:
    return {
        path: hashlib.sha256((project / path).read_bytes()).hexdigest()
        for target in doc["targets"].values()
        for path in target["artifacts"]
    }


@pytest.fixture(scope="session")
def published(nginx, tmp_path_factory):
    """The demo built once from scratch with the remote cache on: everything written through."""
    project = write_demo(tmp_path_factory.mktemp("publisher") / "demo")
    result = run_cli(
        project, "build", "--json", "-j", "2", "--remote-cache", f"{nginx.url}/team", env=clean_env()
    )
    assert result.rc == 0, result.stderr
    assert result.json["steps"]["run"] == result.json["steps"]["total"] == 11
    return project, result.json


# --- end to end through the CLI ---------------------------------------------------------------------


def test_clean_checkout_builds_everything_from_remote(nginx, published, tmp_path):
    publisher, first = published
    # a second machine: same sources, empty local cache, the remote configured in targets.toml
    checkout = write_demo(tmp_path / "checkout", ort_demo_toml(f'\n[cache]\nremote = "{nginx.url}/team"\n'))
    result = run_cli(checkout, "all", "--json", "-j", "2", env=clean_env())
    assert result.rc == 0, result.stderr
    doc = result.json
    assert doc["steps"]["run"] == 0
    assert doc["steps"]["cached"] == doc["steps"]["total"] == 11
    assert {t["status"] for t in doc["targets"].values()} == {"cached"}
    assert artifact_bytes(checkout, doc) == artifact_bytes(publisher, first)
    assert all((checkout / t["bundle"]).is_file() for t in doc["targets"].values())
    assert "warning" not in result.stderr

    # the remote AC value is byte for byte the local entry file, on both machines
    local_entries = sorted((checkout / ".edgebuild" / "cache" / "ac").glob("*/*"))
    assert len(local_entries) == 11
    for entry in local_entries:
        remote = nginx.store / "team" / "ac" / entry.name
        assert remote.read_bytes() == entry.read_bytes()
        assert (
            publisher / ".edgebuild" / "cache" / "ac" / entry.name[:2] / entry.name
        ).read_bytes() == entry.read_bytes()
    # every remote blob is stored under the sha256 of its bytes
    blobs = list((nginx.store / "team" / "cas").iterdir())
    assert blobs and all(hashlib.sha256(b.read_bytes()).hexdigest() == b.name for b in blobs)
    assert CACHE_KEY not in result.stderr + result.stdout


def test_without_the_key_verification_runs_here(nginx, published, tmp_path):
    """A reader without EDGEBUILD_REMOTE_CACHE_KEY cannot tell a poisoned entry from a good one: it
    takes the conversions from the remote but runs each verification (and the reference model it
    compares against) itself before anything is bundled."""
    publisher, first = published
    # a server of its own: this build writes its (unauthenticated) entries through
    server = start_nginx(tmp_path / "server")
    shutil.copytree(nginx.store / "team", server.store / "team")
    try:
        checkout = write_demo(tmp_path / "checkout")
        result = run_cli(
            checkout,
            "all",
            "--json",
            "-j",
            "2",
            "--remote-cache",
            f"{server.url}/team",
            env=clean_env(key=None),
        )
    finally:
        server.stop()
    assert result.rc == 0, result.stderr
    ran = sorted(
        line.split()[1]
        for line in result.stderr.splitlines()
        if line.startswith("[run]") and line.rstrip().endswith(")")
    )
    assert ran == ["cpu-fp16/verify-fp16", "cpu-fp32/check", "cpu-fp32/verify-fp32", "cpu-int8/verify-int8"]
    assert result.json["steps"]["cached"] == 7
    assert artifact_bytes(checkout, result.json) == artifact_bytes(publisher, first)


def test_check_reads_coverage_through_the_remote(nginx, published, tmp_path):
    checkout = write_demo(tmp_path / "checkout")
    result = run_cli(
        checkout, "check", "--json", "-v", "--remote-cache", f"{nginx.url}/team", env=clean_env()
    )
    assert result.rc == 0, result.stderr
    assert {t["status"] for t in result.json["targets"].values()} == {"ok"}
    assert "[run]" not in result.stderr and "[cached]" in result.stderr  # -v lists every step


def test_corrupted_remote_blob_is_detected_and_rebuilt(nginx, published, tmp_path):
    publisher, first = published
    # a server of its own holding a copy of the published cache, so other tests keep a good one
    server = start_nginx(tmp_path / "server")
    shutil.copytree(nginx.store / "team", server.store / "team")
    try:
        artifact = first["targets"]["cpu-int8"]["artifacts"][0]
        digest = hashlib.sha256((publisher / artifact).read_bytes()).hexdigest()
        blob = server.blob(digest, "team")
        data = bytearray(blob.read_bytes())
        data[len(data) // 2] ^= 0xFF  # same size, one byte flipped: only a hash sees it
        blob.write_bytes(bytes(data))

        checkout = write_demo(tmp_path / "checkout")
        result = run_cli(
            checkout, "build", "--json", "-j", "2", "--remote-cache", f"{server.url}/team", env=clean_env()
        )
        assert result.rc == 0, result.stderr
        warnings = [line for line in result.stderr.splitlines() if line.startswith("edgebuild: warning:")]
        assert len(warnings) == 1 and f"blob {digest[:12]} is corrupted" in warnings[0], result.stderr
        assert "[run]      cpu-int8/int8 (ort.quantize)" in result.stderr
        assert 1 <= result.json["steps"]["run"] < 11
        assert result.json["steps"]["failed"] == 0
        # the corrupt copy was never used: the artifact is the rebuilt, correct one...
        assert hashlib.sha256((checkout / artifact).read_bytes()).hexdigest() == digest
        # ...and the rebuild uploaded it again, repairing the server's copy
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == digest
    finally:
        server.stop()


def test_evicted_remote_blob_is_a_quiet_miss(nginx, published, tmp_path):
    publisher, first = published
    server = start_nginx(tmp_path / "server")
    shutil.copytree(nginx.store / "team", server.store / "team")
    try:
        artifact = first["targets"]["cpu-fp16"]["artifacts"][0]
        digest = hashlib.sha256((publisher / artifact).read_bytes()).hexdigest()
        server.blob(digest, "team").unlink()  # servers evict blobs under size limits
        checkout = write_demo(tmp_path / "checkout")
        result = run_cli(
            checkout, "build", "--json", "-j", "2", "--remote-cache", f"{server.url}/team", env=clean_env()
        )
        assert result.rc == 0, result.stderr
        assert "warning" not in result.stderr
        assert "[run]      cpu-fp16/fp16 (ort.fp16)" in result.stderr
        assert 1 <= result.json["steps"]["run"] < 11
        assert (
            hashlib.sha256(server.blob(digest, "team").read_bytes()).hexdigest() == digest
        )  # uploaded again
    finally:
        server.stop()


def test_stopped_server_degrades_to_local_build_with_one_warning(tmp_path):
    server = start_nginx(tmp_path / "server")
    url = server.url
    server.stop()
    project = write_demo(tmp_path / "demo")
    result = run_cli(project, "build", "--json", "-j", "2", "--remote-cache", url, env=clean_env())
    assert result.rc == 0, result.stderr
    assert result.json["steps"]["run"] == 11
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1, result.stderr
    assert url in warnings[0] and "connection refused" in warnings[0] and "building locally" in warnings[0]
    assert "Traceback" not in result.stderr


def test_local_hit_never_touches_the_network(demo_copy):
    # nothing listens on this port: any request would fail and print a warning
    dead = f"http://127.0.0.1:{free_port()}"
    result = run_cli(demo_copy, "build", "--json", "--remote-cache", dead)
    assert result.rc == 0, result.stderr
    assert result.json["steps"]["run"] == 0
    assert "warning" not in result.stderr


@pytest.mark.parametrize(
    "args, toml, env, expected",
    [
        (
            ["--remote-cache", "ftp://cache.local"],
            "",
            {},
            "--remote-cache: remote cache URL must look like http://",
        ),
        ([], '\n[cache]\nremote = "cache.local:8080"\n', {}, "targets.toml:"),
        (
            ["--remote-cache", "http://127.0.0.1:1"],
            "",
            {"EDGEBUILD_REMOTE_CACHE_HEADER": "no colon here"},
            "EDGEBUILD_REMOTE_CACHE_HEADER must look like 'Name: value'",
        ),
    ],
)
def test_remote_cache_configuration_mistakes(tmp_path, args, toml, env, expected):
    project = write_demo(tmp_path / "demo", ort_demo_toml(toml))
    result = run_cli(project, "build", *args, env=env)
    assert result.rc == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], result.stderr
    if toml:
        assert "cache.remote" in lines[0]


# --- the HttpCache client on its own ----------------------------------------------------------------


def test_action_round_trip_and_missing_keys(nginx):
    remote = HttpCache(f"{nginx.url}/unit")
    key = hashlib.sha256(b"action").hexdigest()
    assert remote.get_action(key) is None
    remote.put_action(key, b'{"status": "ok"}\n')
    assert remote.get_action(key) == b'{"status": "ok"}\n'
    assert remote.counters["ac_hits"] == 1 and remote.counters["ac_misses"] == 1
    with pytest.raises(ValueError):
        remote.get_action("../escape")


def test_blob_download_is_verified_before_it_lands(nginx, tmp_path):
    remote = HttpCache(f"{nginx.url}/unit")
    source = tmp_path / "model.bin"
    source.write_bytes(os.urandom(3 * 1024 * 1024 + 17))  # several chunks, an odd tail
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    remote.put_blob(digest, source)
    assert remote.has_blob(digest)

    dest = tmp_path / "cas" / digest
    assert remote.get_blob(digest, dest, mode=0o444)
    assert dest.read_bytes() == source.read_bytes()
    assert dest.stat().st_mode & 0o777 == 0o444

    missing = hashlib.sha256(b"never stored").hexdigest()
    assert not remote.has_blob(missing)
    assert remote.get_blob(missing, tmp_path / "cas" / missing) is False

    # a blob stored under the wrong name: BlobCorrupted, and nothing is left behind
    wrong = hashlib.sha256(b"something else").hexdigest()
    remote.put_blob(wrong, source)
    with pytest.raises(BlobCorrupted) as caught:
        remote.get_blob(wrong, tmp_path / "cas" / wrong)
    assert caught.value.actual == digest
    assert sorted(p.name for p in (tmp_path / "cas").iterdir()) == [digest]


def test_auth_header_comes_from_the_environment(nginx, monkeypatch):
    key = hashlib.sha256(b"secured").hexdigest()
    monkeypatch.delenv("EDGEBUILD_REMOTE_CACHE_HEADER", raising=False)
    with pytest.raises(RemoteUnavailable) as caught:
        HttpCache(f"{nginx.url}/secure").put_action(key, b"x")
    assert "401" in caught.value.reason

    monkeypatch.setenv("EDGEBUILD_REMOTE_CACHE_HEADER", f"X-Cache-Token: {TOKEN}")
    remote = HttpCache(f"{nginx.url}/secure")
    remote.put_action(key, b"x")
    assert remote.get_action(key) == b"x"
    assert (nginx.store / "secure" / "ac" / key).read_bytes() == b"x"

    monkeypatch.setenv("EDGEBUILD_REMOTE_CACHE_HEADER", "X-Cache-Token")
    with pytest.raises(ConfigError, match="EDGEBUILD_REMOTE_CACHE_HEADER"):
        HttpCache(nginx.url)


def test_server_errors_are_retried_then_reported(nginx):
    log = nginx.dir / "failing.log"
    before = len(log.read_text().splitlines()) if log.exists() else 0
    remote = HttpCache(f"{nginx.url}/failing", retries=3, backoff=0.01)
    with pytest.raises(RemoteUnavailable) as caught:
        remote.get_action(hashlib.sha256(b"k").hexdigest())
    assert "HTTP 503" in caught.value.reason and "after 4 attempts" in caught.value.reason
    assert caught.value.url == f"{nginx.url}/failing"
    time.sleep(0.2)  # nginx writes its access log when each request ends
    assert len(log.read_text().splitlines()) - before == 4


def test_a_server_that_never_answers_times_out(tmp_path):
    # a socket that listens but never accepts: the TCP handshake completes, no answer ever comes
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        remote = HttpCache(
            f"http://127.0.0.1:{silent.getsockname()[1]}", timeout=0.3, retries=1, backoff=0.01
        )
        with pytest.raises(RemoteUnavailable) as caught:
            remote.get_blob(hashlib.sha256(b"b").hexdigest(), tmp_path / "blob")
    assert "timed out" in caught.value.reason
    assert not (tmp_path / "blob").exists()


def test_keep_alive_connection_survives_a_server_restart(tmp_path):
    server = start_nginx(tmp_path / "a")
    remote = HttpCache(server.url, retries=0)
    key = hashlib.sha256(b"restart").hexdigest()
    remote.put_action(key, b"1")
    server.stop()
    # the same port again, same store: the client's kept-alive connection is now dead
    conf = tmp_path / "a" / "nginx.conf"
    proc = subprocess.Popen(
        [NGINX, "-c", str(conf), "-p", str(tmp_path / "a")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", server.port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        assert remote.get_action(key) == b"1"  # reconnects without spending a retry
    finally:
        proc.send_signal(signal.SIGQUIT)
        proc.wait(timeout=20)
