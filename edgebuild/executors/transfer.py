"""Files and folders through the shared remote cache as records: a file is its sha256 digest, a
folder the digest and exec bit of each file under it. The build host and the agents of the Dask
executor hand each other these records instead of bytes."""

from __future__ import annotations

import os
from pathlib import Path

from edgebuild.hashing import sha256_file, tree_files


def digests(record: dict) -> list[str]:
    return [record["digest"]] if record["type"] == "file" else [f["digest"] for f in record["files"].values()]


def upload(remote, path: Path) -> dict:
    if path.is_dir():
        files = {}
        for file in tree_files(path):
            digest = sha256_file(file)
            remote.put_blob(digest, file)
            files[file.relative_to(path).as_posix()] = {"digest": digest, "exec": os.access(file, os.X_OK)}
        return {"type": "tree", "files": files}
    digest = sha256_file(path)
    remote.put_blob(digest, path)
    return {"type": "file", "digest": digest}


def download(remote, record: dict, dest: Path) -> None:
    """Fetch a file or folder record from the remote cache to `dest` (LookupError: a blob is missing)."""
    if record["type"] == "file":
        if not remote.get_blob(record["digest"], dest):
            raise LookupError(f"blob {record['digest'][:12]} is not in the remote cache {remote.url}")
        return
    dest.mkdir(parents=True, exist_ok=True)
    for rel, entry in record["files"].items():
        mode = 0o755 if entry.get("exec") else 0o644
        if not remote.get_blob(entry["digest"], dest / rel, mode=mode):
            raise LookupError(f"blob {entry['digest'][:12]} ({rel}) is not in the remote cache {remote.url}")
