"""Writing bundles: reproducible bytes, manifest contents, semantic versions, OpenSSL-verifiable
signatures, and the signed index."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from edgebuild.bundle import BundleError, VersionExists, update_index, verify_bundle, write_bundle
from bundle_helpers import make_spec, read_members


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_same_inputs_give_identical_bytes(work, keypair, tmp_path):
    first = write_bundle(make_spec(work), tmp_path / "a", keypair[0])
    # new mtimes and a copied source file must not change a byte
    copy = tmp_path / "copy.onnx"
    copy.write_bytes((work / "tiny.onnx").read_bytes())
    os.utime(copy, (1_900_000_000, 1_900_000_000))
    second = write_bundle(make_spec(work, artifacts={"model.onnx": copy}), tmp_path / "b", keypair[0])
    assert first.name == second.name == "demo-cpu-fp32-1.0.0.tar.gz"
    assert sha256(first) == sha256(second)


def test_archive_metadata_is_fixed(bundle, monkeypatch, work, keypair, tmp_path):
    raw = bundle.read_bytes()
    assert raw[:2] == b"\x1f\x8b" and raw[3] & 0x08 == 0, "gzip header must not carry a file name"
    assert raw[4:8] == b"\0\0\0\0", "gzip header mtime must be 0"
    members = read_members(bundle)
    names = [m.name for m, _ in members]
    assert names[:3] == [
        "demo-cpu-fp32-1.0.0",
        "demo-cpu-fp32-1.0.0/manifest.json",
        "demo-cpu-fp32-1.0.0/manifest.sig",
    ]
    assert names[3:] == sorted(names[3:], key=lambda n: n.split("/"))
    for info, _ in members:
        assert (info.uid, info.gid, info.uname, info.gname, info.mtime) == (0, 0, "", "", 0)
        assert info.mode in (0o644, 0o755)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    stamped = write_bundle(make_spec(work), tmp_path, keypair[0])
    assert {info.mtime for info, _ in read_members(stamped)} == {1700000000}
    assert sha256(stamped) != sha256(bundle)


def test_manifest_contents(bundle, keypair):
    manifest = verify_bundle(bundle, keypair[1])
    assert manifest["schema_version"] == 1
    assert (manifest["project"], manifest["target"], manifest["version"], manifest["device"]) == (
        "demo",
        "cpu-fp32",
        "1.0.0",
        "cpu",
    )
    assert manifest["runtime"] == "onnxruntime" and manifest["artifacts"] == ["model.onnx"]
    assert manifest["io"]["outputs"][0]["quantization"] == {"scale": 0.05, "zero_point": 3}
    assert manifest["io"]["inputs"][0]["layout"] == "NC"
    assert manifest["coverage"] == {"supported": 3, "total": 3, "unsupported": []}  # per-node list dropped
    assert manifest["metrics"]["latency_ms"] == 0.1
    assert manifest["provenance"]["source_sha256"] == "ab" * 32
    assert manifest["provenance"]["steps"] == {"onnx.check": "1"}
    assert manifest["selftest"] == "selftest/selftest.npz"
    with tarfile.open(bundle) as tar:
        model = tar.extractfile("demo-cpu-fp32-1.0.0/model.onnx").read()
    assert manifest["files"]["model.onnx"] == {
        "sha256": hashlib.sha256(model).hexdigest(),
        "size": len(model),
    }


def test_signature_verifies_with_stock_openssl(unpacked, keypair, other_keypair):
    command = [
        "openssl",
        "pkeyutl",
        "-verify",
        "-pubin",
        "-inkey",
        str(keypair[1]),
        "-rawin",
        "-in",
        str(unpacked / "manifest.json"),
        "-sigfile",
        str(unpacked / "manifest.sig"),
    ]
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0 and "Signature Verified Successfully" in done.stdout
    command[command.index(str(keypair[1]))] = str(other_keypair[1])
    assert subprocess.run(command, capture_output=True, text=True).returncode != 0


def test_same_version_same_bytes_is_a_no_op(bundle, work, keypair):
    before = bundle.stat().st_mtime_ns
    assert write_bundle(make_spec(work), bundle.parent, keypair[0]) == bundle
    assert bundle.stat().st_mtime_ns == before


def test_different_bundle_under_existing_version_is_refused(bundle, work, keypair):
    original = sha256(bundle)
    changed = make_spec(work, metrics={"latency_ms": 0.2})
    with pytest.raises(VersionExists, match="1.0.0"):
        write_bundle(changed, bundle.parent, keypair[0])
    assert sha256(bundle) == original
    assert not [p for p in bundle.parent.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("version", ["1.0", "v1.0.0", "1.0.0.0", "01.0.0", "latest", "1.0.0-"])
def test_non_semantic_versions_are_refused(version, work, keypair, tmp_path):
    with pytest.raises(BundleError, match="semantic version"):
        write_bundle(make_spec(work, version=version), tmp_path, keypair[0])


def test_spec_mistakes_name_the_culprit(work, keypair, tmp_path):
    with pytest.raises(BundleError, match="missing.onnx"):
        write_bundle(make_spec(work, artifacts={"model.onnx": work / "missing.onnx"}), tmp_path, keypair[0])
    with pytest.raises(BundleError, match="'../model.onnx'"):
        write_bundle(make_spec(work, artifacts={"../model.onnx": work / "tiny.onnx"}), tmp_path, keypair[0])
    with pytest.raises(BundleError, match="'loader.py'"):
        write_bundle(make_spec(work, extra_files={"loader.py": work / "tiny.onnx"}), tmp_path, keypair[0])
    with pytest.raises(BundleError, match="runtime 'tvm'"):
        write_bundle(make_spec(work, runtime="tvm"), tmp_path, keypair[0])
    with pytest.raises(BundleError, match="NaN"):
        write_bundle(make_spec(work, metrics={"accuracy": float("nan")}), tmp_path, keypair[0])


def test_folder_artifacts_and_extra_files_are_bundled(work, keypair, tmp_path):
    package = tmp_path / "Model.mlpackage"
    (package / "Data" / "weights").mkdir(parents=True)
    (package / "Manifest.json").write_text("{}\n")
    (package / "Data" / "weights" / "weight.bin").write_bytes(b"\0" * 100)
    config = tmp_path / "builder.json"
    config.write_text('{"fp16": true}\n')
    spec = make_spec(
        work,
        runtime="coreml",
        artifacts={"Model.mlpackage": package},
        extra_files={"config/builder.json": config},
    )
    manifest = verify_bundle(write_bundle(spec, tmp_path / "out", keypair[0]), keypair[1])
    assert {
        "Model.mlpackage/Manifest.json",
        "Model.mlpackage/Data/weights/weight.bin",
        "config/builder.json",
        "LoadModel.swift",
    } <= set(manifest["files"])


def test_index_lists_every_bundle_and_is_signed(work, keypair, other_keypair, tmp_path):
    bundles = tmp_path / "bundles"
    paths = [
        write_bundle(make_spec(work, version=v), bundles, keypair[0])
        for v in ("1.10.0", "1.2.0", "1.2.0-rc.1")
    ]
    index_path = update_index(bundles, keypair[0])
    data = index_path.read_bytes()
    signature = (bundles / "index.json.sig").read_bytes()
    load_pem_public_key(keypair[1].read_bytes()).verify(signature, data)  # raises if wrong
    done = subprocess.run(
        [
            "openssl",
            "pkeyutl",
            "-verify",
            "-pubin",
            "-inkey",
            str(keypair[1]),
            "-rawin",
            "-in",
            str(index_path),
            "-sigfile",
            str(bundles / "index.json.sig"),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    index = json.loads(data)
    assert [e["version"] for e in index["bundles"]] == ["1.2.0-rc.1", "1.2.0", "1.10.0"]
    by_file = {e["file"]: e for e in index["bundles"]}
    for path in paths:
        entry = by_file[path.name]
        assert entry["sha256"] == sha256(path) and entry["size"] == path.stat().st_size
        assert (entry["target"], entry["device"], entry["project"]) == ("cpu-fp32", "cpu", "demo")
    assert update_index(bundles, keypair[0]).read_bytes() == data, "the index must be reproducible"
    # a bundle signed by another key cannot be vouched for by this index
    write_bundle(make_spec(work, version="2.0.0"), bundles, other_keypair[0])
    with pytest.raises(BundleError, match="demo-cpu-fp32-2.0.0.tar.gz.*not signed by the index key"):
        update_index(bundles, keypair[0])


def test_verify_without_key_checks_checksums_only(bundle, tmp_path):
    assert verify_bundle(bundle, None)["version"] == "1.0.0"
    with pytest.raises(BundleError, match="not a PEM public key"):
        bad = tmp_path / "bad.pem"
        bad.write_text("hello\n")
        verify_bundle(bundle, bad)
