"""The cache as an attacker sees it (issue 14): a remote cache server that lies (traversal digests
and tree paths, poisoned or replayed entries, endless bodies), content-store blobs changed on disk,
malformed local entries. A build must refuse or rebuild, never read or write outside its cache
folder, and never put bytes other than the verified ones into build/ or a bundle."""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
from pathlib import Path

import pytest

from conftest import run_cli, write_demo
from hostile_cache import HostileCache
from edgebuild.cache import entry_mac
from edgebuild.errors import ConfigError
from edgebuild.hashing import canonical_json
from edgebuild.remote_cache import MAX_ENTRY_BYTES, HttpCache, ResponseTooLarge

KEY = "ci-writers-secret-" + "5" * 40  # EDGEBUILD_REMOTE_CACHE_KEY of the trusted writers


def env(key: str | None) -> dict:
    return {
        "EDGEBUILD_CACHE_DIR": "",
        "EDGEBUILD_REMOTE_CACHE_HEADER": "",
        "EDGEBUILD_REMOTE_CACHE_KEY": key or "",
    }


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def ran(stderr: str) -> list[str]:
    return sorted(
        line.split()[1]
        for line in stderr.splitlines()
        if line.startswith("[run]") and line.rstrip().endswith(")")
    )


def warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("edgebuild: warning:")]


def snapshot(root: Path, skip: set[Path]) -> dict[str, tuple]:
    """Every file and folder under `root` except the `skip` subtrees: what a build may not touch."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if Path(dirpath, d) not in skip]
        for name in filenames + dirnames:
            path = Path(dirpath, name)
            st = path.lstat()
            if path.is_dir():  # a folder's mtime moves when the build adds build/ beside it
                found[str(path.relative_to(root))] = (st.st_mode,)
                continue
            digest = sha(path.read_bytes()) if path.is_file() and not path.is_symlink() else None
            found[str(path.relative_to(root))] = (st.st_mode, st.st_size, st.st_mtime_ns, digest)
    return found


@pytest.fixture(scope="module")
def server():
    hostile = HostileCache()
    yield hostile
    hostile.stop()


@pytest.fixture(scope="module")
def published(server, tmp_path_factory):
    """The demo built once by a trusted writer (with the key) through the server: every entry and
    blob is on it, authenticated. Returns the publisher project, its summary and the pristine store."""
    project = write_demo(tmp_path_factory.mktemp("publisher") / "demo")
    result = run_cli(project, "all", "--json", "-j", "2", "--remote-cache", server.url, env=env(KEY))
    assert result.rc == 0, result.stderr
    assert KEY not in result.stderr + result.stdout
    return project, result.json, dict(server.store)


@pytest.fixture
def fresh(server, published):
    """The server with the publisher's pristine store again; returns (store, label -> action key)."""
    server.store.clear()
    server.store.update(published[2])
    server.endless.clear()
    server.announce.clear()
    keys = {json.loads(data)["label"]: key for key, data in server.entries().items()}
    return server, keys


def artifact_digests(project: Path, doc: dict) -> dict[str, str]:
    return {
        path: sha((project / path).read_bytes()) for t in doc["targets"].values() for path in t["artifacts"]
    }


def set_entry(server: HostileCache, key: str, entry: dict) -> None:
    server.store[f"/ac/{key}"] = (json.dumps(entry, indent=1, sort_keys=True) + "\n").encode()


def entry_of(server: HostileCache, key: str) -> dict:
    return json.loads(server.store[f"/ac/{key}"])


def bundle_member(project: Path, bundle: str, suffix: str) -> bytes:
    with tarfile.open(project / bundle) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith(suffix))
        return tar.extractfile(member).read()


# --- a lying server -------------------------------------------------------------------------------


def test_traversal_digests_tree_paths_and_endless_bodies_are_refused(fresh, published, tmp_path):
    server, keys = fresh
    publisher, first, _ = published
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret.txt"
    secret.write_bytes(b"the signing key's neighbour\n")
    # 1. a digest that walks out of the content store to a local file (never downloaded, never hashed)
    fp32 = entry_of(server, keys["cpu-fp32/fp32"])
    fp32["outputs"]["model.onnx"]["digest"] = "../" * 12 + str(secret).lstrip("/")
    set_entry(server, keys["cpu-fp32/fp32"], fp32)
    # 2. a tree whose member path climbs out of the tree folder (its digest is honest: only the path lies)
    planted = outside / "planted.txt"
    payload = b"#!/bin/sh\necho owned\n"
    server.store[f"/cas/{sha(payload)}"] = payload
    files = {
        "../" * 12 + str(planted).lstrip("/"): {"digest": sha(payload), "size": len(payload), "exec": True}
    }
    listing = canonical_json(files)
    server.store[f"/cas/{sha(listing)}"] = listing
    fp16 = entry_of(server, keys["cpu-fp16/fp16"])
    fp16["outputs"]["model.onnx"] = {
        "type": "tree",
        "digest": sha(listing),
        "size": len(payload),
        "files": files,
    }
    set_entry(server, keys["cpu-fp16/fp16"], fp16)
    # 3. the int8 artifact's blob answered with zeros that never end
    int8_blob = entry_of(server, keys["cpu-int8/int8"])["outputs"]["model.onnx"]["digest"]
    server.endless.add(f"/cas/{int8_blob}")

    checkout = write_demo(tmp_path / "checkout")
    skip = {checkout / ".edgebuild", checkout / "build", checkout / "bundles"}
    before = snapshot(tmp_path, skip)
    result = run_cli(checkout, "all", "--json", "-j", "2", "--remote-cache", server.url, env=env(None))
    assert result.rc == 0, result.stderr
    assert "Traceback" not in result.stderr
    found = warnings(result.stderr)
    assert any("malformed (a digest is not 64 lowercase hex digits)" in w for w in found), found
    assert any("leaves its folder" in w for w in found), found
    assert any(f"blob {int8_blob[:12]} is larger than" in w for w in found), found
    assert {"cpu-fp32/fp32", "cpu-fp16/fp16", "cpu-int8/int8"} <= set(ran(result.stderr))
    # the artifacts (and so the bundles) are the honest ones, rebuilt here
    assert artifact_digests(checkout, result.json) == artifact_digests(publisher, first)
    bundle = result.json["targets"]["cpu-fp32"]["bundle"]
    assert sha(bundle_member(checkout, bundle, "digits_fp32.onnx")) == sha(
        (publisher / "build/cpu-fp32/digits_fp32.onnx").read_bytes()
    )
    # nothing outside the project's own output folders changed, nothing was planted
    assert snapshot(tmp_path, skip) == before
    assert not planted.exists()
    assert server.sent[f"/cas/{int8_blob}"] < 64 << 20  # hung up early, not after the gigabyte
    assert not [p for p in (checkout / ".edgebuild").rglob("*.part")]


def test_with_the_key_poisoned_and_replayed_entries_are_ignored(fresh, published, tmp_path):
    server, keys = fresh
    publisher, first, _ = published
    # a valid, authenticated entry of another action replayed under this key: the fp16 model as fp32
    server.store[f"/ac/{keys['cpu-fp32/fp32']}"] = server.store[f"/ac/{keys['cpu-fp16/fp16']}"]
    # an entry naming another artifact's (valid) blob, "signed" with a key that is not the writers'
    int8 = entry_of(server, keys["cpu-int8/int8"])
    int8["outputs"]["model.onnx"] = entry_of(server, keys["cpu-fp16/fp16"])["outputs"]["model.onnx"]
    int8["auth"] = entry_mac(b"not-the-writers-key-" + b"0" * 40, keys["cpu-int8/int8"], int8)
    set_entry(server, keys["cpu-int8/int8"], int8)
    # an unsigned entry with better figures
    verify = entry_of(server, keys["cpu-fp16/verify-fp16"])
    verify.pop("auth")
    verify["metadata"]["metrics"]["accuracy_drop"] = -0.5
    set_entry(server, keys["cpu-fp16/verify-fp16"], verify)

    checkout = write_demo(tmp_path / "checkout")
    result = run_cli(checkout, "all", "--json", "-j", "2", "--remote-cache", server.url, env=env(KEY))
    assert result.rc == 0, result.stderr
    rejected = [
        w for w in warnings(result.stderr) if "is not authenticated by EDGEBUILD_REMOTE_CACHE_KEY" in w
    ]
    assert len(rejected) == 3, result.stderr
    # rebuilt here; their verifications' keys are the publisher's again, so those are remote hits
    assert ran(result.stderr) == ["cpu-fp16/verify-fp16", "cpu-fp32/fp32", "cpu-int8/int8"]
    assert artifact_digests(checkout, result.json) == artifact_digests(publisher, first)
    assert result.json["targets"]["cpu-fp16"]["metrics"]["accuracy_drop"] >= 0
    assert KEY not in result.stderr + result.stdout


def test_without_the_key_a_wrong_model_is_caught_by_verification_here(fresh, published, tmp_path):
    """No key: nobody vouches for the entries. A poisoned entry naming a valid blob of a wrong model
    is taken, but the verification runs here, fails, and nothing is bundled for that target."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    server, keys = fresh
    model = onnx.load(str(published[0] / "build/cpu-fp32/digits_fp32.onnx"))
    for init in model.graph.initializer:  # another model of the same shape: every weight negated
        if init.name == "head.3.weight":
            init.CopyFrom(numpy_helper.from_array(-numpy_helper.to_array(init).astype(np.float32), init.name))
    wrong = model.SerializeToString()
    server.store[f"/cas/{sha(wrong)}"] = wrong
    fp32 = entry_of(server, keys["cpu-fp32/fp32"])
    fp32["outputs"]["model.onnx"].update(digest=sha(wrong), size=len(wrong))
    set_entry(server, keys["cpu-fp32/fp32"], fp32)

    checkout = write_demo(tmp_path / "checkout")
    result = run_cli(checkout, "all", "--json", "-j", "2", "--remote-cache", server.url, env=env(None))
    assert result.rc == 1, result.stderr
    targets = result.json["targets"]
    assert targets["cpu-fp32"]["status"] == "failed" and "verify-fp32" in targets["cpu-fp32"]["reason"]
    assert targets["cpu-fp32"]["bundle"] is None
    assert not list((checkout / "bundles").glob("*cpu-fp32*"))
    assert {targets[t]["status"] for t in ("cpu-fp16", "cpu-int8")} == {"built"}  # verified here
    assert "cpu-fp32/fp32" not in ran(result.stderr)  # the conversion was taken...
    assert "cpu-fp32/verify-fp32" in ran(result.stderr)  # ...and checked here
    assert any(
        "verification failed on results taken from the remote cache" in w and "cpu-fp32/fp32" in w
        for w in warnings(result.stderr)
    ), result.stderr
    # the failed results are dropped: the next build converts here, passes, bundles the true model
    # and writes the good entry back to the server (a new version: the other targets' figures, which
    # compare with fp32, change too)
    again = run_cli(
        checkout,
        "all",
        "--json",
        "-j",
        "2",
        "--version",
        "1.0.1",
        "--remote-cache",
        server.url,
        env=env(None),
    )
    assert again.rc == 0, again.stderr
    assert "cpu-fp32/fp32" in ran(again.stderr)
    true_model = sha((published[0] / "build/cpu-fp32/digits_fp32.onnx").read_bytes())
    assert (
        sha(bundle_member(checkout, again.json["targets"]["cpu-fp32"]["bundle"], "digits_fp32.onnx"))
        == true_model
    )
    assert entry_of(server, keys["cpu-fp32/fp32"])["outputs"]["model.onnx"]["digest"] == true_model


def test_client_limits_on_entries_and_announced_sizes(server, tmp_path, monkeypatch):
    remote = HttpCache(server.url, retries=0)
    key = sha(b"big entry")
    server.store[f"/ac/{key}"] = b"{" + b" " * MAX_ENTRY_BYTES + b"}"
    with pytest.raises(ResponseTooLarge):
        remote.get_action(key)
    digest = sha(b"small")
    server.announce[f"/cas/{digest}"] = 1 << 40  # a terabyte announced: refused unread
    with pytest.raises(ResponseTooLarge):
        remote.get_blob(digest, tmp_path / "blob")
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setenv("EDGEBUILD_REMOTE_CACHE_MAX_MB", "1")
    assert HttpCache(server.url).max_bytes == 1 << 20
    monkeypatch.setenv("EDGEBUILD_REMOTE_CACHE_MAX_MB", "lots")
    with pytest.raises(ConfigError, match="EDGEBUILD_REMOTE_CACHE_MAX_MB"):
        HttpCache(server.url)


def test_entries_taken_without_the_key_are_remembered_as_such(server, tmp_path, monkeypatch):
    """A local copy of an unauthenticated remote entry serves where such a hit is allowed, never for
    a verification step (remote=False), and not at all once the key is set."""
    from edgebuild.cache import LocalCache

    blob = b"converted model"
    key = sha(b"an action")
    server.store[f"/cas/{sha(blob)}"] = blob
    set_entry(
        server,
        key,
        {"status": "ok", "outputs": {"model.onnx": {"type": "file", "digest": sha(blob), "size": len(blob)}}},
    )
    monkeypatch.delenv("EDGEBUILD_REMOTE_CACHE_KEY", raising=False)
    cache = LocalCache(tmp_path / "cache", HttpCache(server.url))
    assert cache.actions.get(key)["outputs"]["model.onnx"]["digest"] == sha(blob)
    assert json.loads((tmp_path / "cache" / "ac" / key[:2] / key).read_bytes())["remote_unverified"] is True
    assert LocalCache(tmp_path / "cache").actions.get(key) is not None  # a conversion may use it
    assert LocalCache(tmp_path / "cache").actions.get(key, remote=False) is None  # a verification may not
    monkeypatch.setenv("EDGEBUILD_REMOTE_CACHE_KEY", KEY)
    keyed = LocalCache(tmp_path / "cache", HttpCache(server.url))
    assert keyed.actions.get(key) is None  # asked again, and the server's copy is not signed
    signed = entry_of(server, key)
    signed["auth"] = entry_mac(KEY.encode(), key, signed)
    set_entry(server, key, signed)
    keyed = LocalCache(tmp_path / "cache", HttpCache(server.url))
    assert keyed.actions.get(key) is not None
    assert "remote_unverified" not in json.loads((tmp_path / "cache" / "ac" / key[:2] / key).read_bytes())


def test_tree_outputs_travel_authenticated_and_are_rechecked(server, tmp_path, monkeypatch):
    """A folder output (a Core ML package, say) written through by a keyed writer comes back whole
    on another machine; a file planted in the materialised tree is noticed and the tree made again."""
    from edgebuild.cache import LocalCache
    from edgebuild.hashing import StatCache

    monkeypatch.setenv("EDGEBUILD_REMOTE_CACHE_KEY", KEY)
    package = tmp_path / "out" / "model.mlpackage"
    (package / "Data").mkdir(parents=True)
    (package / "Data" / "weights.bin").write_bytes(os.urandom(4096))
    (package / "Manifest.json").write_text('{"a": 1}')
    weights = (package / "Data" / "weights.bin").read_bytes()
    writer = LocalCache(tmp_path / "w", HttpCache(server.url), StatCache(tmp_path / "w.json"))
    record = writer.store.put_tree(package)
    key = sha(b"coreml convert")
    writer.actions.put(
        key, {"status": "ok", "outputs": {"model.mlpackage": record}, "metadata": {}, "message": None}
    )

    reader = LocalCache(tmp_path / "r", HttpCache(server.url), StatCache(tmp_path / "r.json"))
    tree = reader.store.tree_path(reader.actions.get(key)["outputs"]["model.mlpackage"])
    assert (tree / "Data" / "weights.bin").read_bytes() == weights
    (tree / "Data" / "extra.py").write_text("import os\n")
    again = reader.store.tree_path(record)
    assert sorted(p.relative_to(again).as_posix() for p in again.rglob("*") if p.is_file()) == [
        "Data/weights.bin",
        "Manifest.json",
    ]


def test_entries_nested_past_the_parser_are_misses(server, tmp_path, monkeypatch, capsys):
    from edgebuild.cache import LocalCache

    monkeypatch.delenv("EDGEBUILD_REMOTE_CACHE_KEY", raising=False)
    key = sha(b"deep")
    server.store[f"/ac/{key}"] = b"[" * 200_000
    cache = LocalCache(tmp_path / "cache", HttpCache(server.url))
    assert cache.actions.get(key) is None
    assert "malformed" in capsys.readouterr().err
    local = tmp_path / "cache" / "ac" / key[:2] / key
    local.parent.mkdir(parents=True)
    local.write_bytes(b'{"a": ' * 200_000)
    assert LocalCache(tmp_path / "cache").actions.get(key) is None
    assert LocalCache(tmp_path / "cache").gc(set(), 0)["removed_entries"] == 1


def test_short_cache_key_is_refused_without_echo(tmp_path, server):
    project = write_demo(tmp_path / "demo")
    result = run_cli(project, "build", "--remote-cache", server.url, env=env("hunter2hunter2"))
    assert result.rc == 2
    assert result.stderr.count("\n") == 1 and "EDGEBUILD_REMOTE_CACHE_KEY is too short" in result.stderr
    assert "hunter2" not in result.stderr
    # nor does a password in a cache URL come back in its error
    bad = run_cli(project, "build", "--remote-cache", "ftp://ci:hunter2@cache.local/x", env=env(None))
    assert bad.rc == 2 and "ftp://***@cache.local/x" in bad.stderr and "hunter2" not in bad.stderr


# --- the local cache ------------------------------------------------------------------------------


def test_flipped_bytes_in_a_blob_never_reach_build_or_bundle(demo_copy):
    """64 bytes flipped in the content-store blobs of an artifact and of a self-test: the build
    notices, evicts them, reruns the steps, and build/ and the bundles hold the true bytes."""
    ac = demo_copy / ".edgebuild" / "cache" / "ac"
    entries = {json.loads(p.read_bytes())["label"]: json.loads(p.read_bytes()) for p in ac.glob("*/*")}
    artifact = entries["cpu-fp32/fp32"]["outputs"]["model.onnx"]["digest"]
    selftest = entries["cpu-fp16/verify-fp16"]["outputs"]["selftest.npz"]["digest"]
    (demo_copy / "build").rename(demo_copy / "build.old")  # nothing to keep: everything is copied again
    for digest in (artifact, selftest):
        blob = demo_copy / ".edgebuild" / "cache" / "cas" / digest[:2] / digest
        blob.chmod(0o644)
        data = bytearray(blob.read_bytes())
        for i in range(64):
            data[len(data) // 3 + i] ^= 0xFF
        blob.write_bytes(bytes(data))
        blob.chmod(0o444)
    result = run_cli(demo_copy, "all", "--json", "--version", "1.0.1")
    assert result.rc == 0, result.stderr
    assert len([w for w in warnings(result.stderr) if "does not match its digest; evicted" in w]) == 2
    assert {"cpu-fp32/fp32", "cpu-fp16/verify-fp16"} <= set(ran(result.stderr))
    assert sha((demo_copy / "build/cpu-fp32/digits_fp32.onnx").read_bytes()) == artifact
    targets = result.json["targets"]
    assert sha(bundle_member(demo_copy, targets["cpu-fp32"]["bundle"], "digits_fp32.onnx")) == artifact
    assert sha(bundle_member(demo_copy, targets["cpu-fp16"]["bundle"], "selftest.npz")) == selftest
    again = run_cli(demo_copy, "build", "--json")  # the rebuilt blobs are good: all cached
    assert again.json["steps"]["run"] == 0 and not warnings(again.stderr)


@pytest.mark.parametrize(
    "text",
    [
        '{"outputs": "x"}',
        "[1, 2]",
        '{"status": "ok", "outputs": {"model.onnx": {"type": "file"}}}',
        '{"status": "ok", "outputs": {"model.onnx": {"type": "file", "size": 1, '
        '"digest": "../../../../etc/passwd"}}}',
    ],
)
def test_malformed_local_entry_is_a_miss(demo_copy, text):
    ac = demo_copy / ".edgebuild" / "cache" / "ac"
    path = next(p for p in ac.glob("*/*") if json.loads(p.read_bytes())["label"] == "cpu-int8/int8")
    path.write_text(text)
    result = run_cli(demo_copy, "build", "--json")
    assert result.rc == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert ran(result.stderr) == ["cpu-int8/int8"]
    assert any("is malformed" in w for w in warnings(result.stderr))
    assert json.loads(path.read_bytes())["label"] == "cpu-int8/int8"  # rewritten by the rerun
