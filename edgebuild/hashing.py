"""Content hashes of files and folders, and the stat cache that avoids re-reading unchanged files.

A file's hash is reused while its (size, mtime_ns, inode, ctime_ns) are unchanged, so a no-op
build of a project with gigabyte models reads zero bytes of them; `touch` changes mtime, which
triggers one re-hash, and the unchanged digest then leaves every action key as it was.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

from edgebuild.fsutil import atomic_write_json

CHUNK = 8 * 1024 * 1024  # large reads keep hashlib (OpenSSL) at openssl-dgst speed


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(buf):
            digest.update(view[:n])
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical_json(value) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def folder_digest(files: dict[str, str]) -> str:
    """A folder's digest from its files' relative paths and digests (the order does not matter)."""
    return sha256_bytes(canonical_json(sorted([rel, digest] for rel, digest in files.items())))


def tree_files(root: Path) -> list[Path]:
    """Regular files under `root`, sorted by relative path (symlinks are not followed)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in filenames:
            path = Path(dirpath) / name
            if path.is_file() and not path.is_symlink():
                found.append(path)
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


class StatCache:
    """path -> (size, mtime_ns, inode, ctime_ns, sha256), persisted in one JSON file."""

    def __init__(self, file: Path) -> None:
        self.file = file
        self._lock = threading.Lock()
        self._dirty = False
        self.bytes_hashed = 0
        try:
            self._entries: dict[str, list] = json.loads(file.read_text())
        except (FileNotFoundError, ValueError):
            self._entries = {}

    def digest(self, path: Path) -> str:
        """sha256 of a file, or of a folder's canonical listing of (relative path, file digest)."""
        if path.is_dir():
            return folder_digest({p.relative_to(path).as_posix(): self.digest(p) for p in tree_files(path)})
        st = path.stat()
        key = str(path)
        fingerprint = [st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns]
        with self._lock:
            entry = self._entries.get(key)
        if entry is not None and entry[:4] == fingerprint:
            return entry[4]
        value = sha256_file(path)
        with self._lock:
            self.bytes_hashed += st.st_size
            self._entries[key] = fingerprint + [value]
            self._dirty = True
        return value

    def remember(self, path: Path, digest: str) -> None:
        """Record a digest already known (e.g. a file just copied out of the content store)."""
        st = path.stat()
        with self._lock:
            self._entries[str(path)] = [st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns, digest]
            self._dirty = True

    def save(self) -> None:
        with self._lock:
            if not self._dirty:
                return
            # drop entries of files that no longer exist so the file does not grow forever
            self._entries = {k: v for k, v in self._entries.items() if os.path.exists(k)}
            atomic_write_json(self.file, self._entries)
            self._dirty = False
