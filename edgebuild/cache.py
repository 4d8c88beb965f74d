"""The local cache: a content-addressed blob store and an action cache mapping keys to outputs.

Layout under <project>/.edgebuild/cache (or $EDGEBUILD_CACHE_DIR):
  cas/ab/<sha256>        output blobs, read-only, written by rename so never seen half-written
  ac/ab/<action key>     JSON: outputs (name -> file digest or tree), step metadata, status
  trees/<digest>/        folders (e.g. .mlpackage) materialised from blobs for downstream steps
Builds take the gc lock shared; `cache gc` takes it exclusive, so it never deletes under a build.

With a remote cache (an HttpCache, see remote_cache.py) the action cache reads and writes through
it: a local miss fetches the remote entry and every blob it names (each verified by its sha256),
and a successful step's blobs are uploaded before its entry. A local hit never touches the network.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from edgebuild.fsutil import atomic_write_bytes, file_lock
from edgebuild.hashing import canonical_json, sha256_bytes, sha256_file, tree_files


class ContentStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, digest: str) -> Path:
        return self.root / "cas" / digest[:2] / digest

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def put_file(self, src: Path) -> dict:
        """Move `src` into the store (it must be on the same file system, e.g. under cache/tmp)."""
        digest = sha256_file(src)
        size = src.stat().st_size
        dst = self.path(digest)
        if dst.exists():
            src.unlink()
        else:
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(src, 0o444)
            os.replace(src, dst)
        return {"type": "file", "digest": digest, "size": size}

    def put_bytes(self, data: bytes) -> str:
        digest = sha256_bytes(data)
        if not self.has(digest):
            tmp = self.tmp_dir() / "blob"
            tmp.write_bytes(data)
            self.put_file(tmp)
            shutil.rmtree(tmp.parent, ignore_errors=True)
        return digest

    def put_tree(self, folder: Path) -> dict:
        files = {}
        for path in tree_files(folder):
            rel = path.relative_to(folder).as_posix()
            executable = os.access(path, os.X_OK)
            record = self.put_file(path)
            files[rel] = {"digest": record["digest"], "size": record["size"], "exec": executable}
        listing = canonical_json(files)
        return {"type": "tree", "digest": self.put_bytes(listing),
                "size": sum(f["size"] for f in files.values()), "files": files}

    def tree_path(self, record: dict) -> Path:
        """A folder with the tree's files (hard links into the store), created once, atomically."""
        final = self.root / "trees" / record["digest"]
        if final.is_dir():
            return final
        staging = Path(tempfile.mkdtemp(prefix="tree.", dir=self.tmp_dir()))
        for rel, entry in record["files"].items():
            dst = staging / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(self.path(entry["digest"]), dst)
            except OSError:
                shutil.copyfile(self.path(entry["digest"]), dst)
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(staging, final)
        except OSError:   # another build materialised it first
            shutil.rmtree(staging, ignore_errors=True)
        return final

    def output_path(self, record: dict) -> Path:
        return self.tree_path(record) if record["type"] == "tree" else self.path(record["digest"])

    def tmp_dir(self) -> Path:
        base = self.root / "tmp"
        base.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f"{os.getpid()}.", dir=base))

    def blobs_of(self, outputs: dict) -> list[str]:
        digests = []
        for record in outputs.values():
            digests.append(record["digest"])
            if record["type"] == "tree":
                digests.extend(f["digest"] for f in record["files"].values())
        return digests


class ActionCache:
    def __init__(self, root: Path, store: ContentStore, remote=None) -> None:
        self.root, self.store = root, store
        self.remote = remote          # an HttpCache, or None; switched off when the server fails
        self._remote_lock = threading.Lock()
        self._remote_missed: set[str] = set()   # asked once this build: the scheduler asks again under its lock

    def _path(self, key: str) -> Path:
        return self.root / "ac" / key[:2] / key

    def get(self, key: str) -> dict | None:
        """The entry for `key`, or None when absent or when any of its blobs is gone."""
        path = self._path(key)
        try:
            entry = json.loads(path.read_bytes())
        except (FileNotFoundError, ValueError):
            entry = None
        if entry is not None and all(self.store.has(d) for d in self.store.blobs_of(entry["outputs"])):
            return entry
        return self._get_remote(key) if self.remote is not None else None

    def touch(self, key: str) -> None:
        """Mark an entry as used now (gc keeps recently used entries)."""
        try:
            os.utime(self._path(key))
        except FileNotFoundError:
            pass

    def put(self, key: str, entry: dict) -> None:
        data = entry_bytes(entry)
        atomic_write_bytes(self._path(key), data)
        if self.remote is not None and entry["status"] == "ok":
            self._put_remote(key, entry, data)

    def _get_remote(self, key: str) -> dict | None:
        """Read-through: the remote entry, once every blob it names is verified in the local store.
        Only successful entries are taken: whether a step defers depends on the host it ran on."""
        from edgebuild.remote_cache import BlobCorrupted, RemoteUnavailable
        remote = self.remote
        if remote is None or key in self._remote_missed:
            return None
        self._remote_missed.add(key)    # until it is found complete below
        try:
            data = remote.get_action(key)
            if data is None:
                return None
            try:
                entry = json.loads(data)
                digests = self.store.blobs_of(entry["outputs"])
                status = entry["status"]
            except (ValueError, KeyError, TypeError, AttributeError):
                _warn(f"remote cache {remote.url}: malformed action entry {key[:12]}, ignored")
                return None
            if status != "ok":
                return None
            for digest in dict.fromkeys(digests):
                if not self.store.has(digest) and not remote.get_blob(digest, self.store.path(digest), 0o444):
                    return None     # the server evicted a blob the entry needs: a miss
        except BlobCorrupted as exc:
            _warn(f"{exc}; treated as a miss, the step runs again")
            return None
        except RemoteUnavailable as exc:
            self._switch_off_remote(exc)
            return None
        except ValueError:          # a digest or key that is no cache key: not from edgebuild
            _warn(f"remote cache {remote.url}: malformed action entry {key[:12]}, ignored")
            return None
        atomic_write_bytes(self._path(key), data)
        self._remote_missed.discard(key)
        return entry

    def _put_remote(self, key: str, entry: dict, data: bytes) -> None:
        """Write-through: blobs first, then the entry, so the server never holds an entry whose
        blobs it lacks (unless it evicts them later; readers treat that as a miss)."""
        from edgebuild.remote_cache import RemoteUnavailable
        remote = self.remote
        if remote is None:
            return
        try:
            for digest in dict.fromkeys(self.store.blobs_of(entry["outputs"])):
                remote.put_blob(digest, self.store.path(digest))
            remote.put_action(key, data)
        except RemoteUnavailable as exc:
            self._switch_off_remote(exc)

    def _switch_off_remote(self, exc: Exception) -> None:
        """One warning, then the rest of the build runs on the local cache alone."""
        with self._remote_lock:
            if self.remote is not None:
                self.remote = None
                _warn(f"{exc}; building locally without it")

    def keys(self) -> list[Path]:
        return sorted((self.root / "ac").glob("*/*"))


def entry_bytes(entry: dict) -> bytes:
    """An action entry as stored: the local entry file and the remote AC value are these bytes."""
    return (json.dumps(entry, indent=1, sort_keys=True) + "\n").encode()


def _warn(message: str) -> None:
    print(f"edgebuild: warning: {message}", file=sys.stderr, flush=True)


@dataclass
class LocalCache:
    root: Path
    remote: object | None = None      # an HttpCache the action cache reads and writes through

    def __post_init__(self) -> None:
        self.store = ContentStore(self.root)
        self.actions = ActionCache(self.root, self.store, self.remote)

    @classmethod
    def for_project(cls, state_dir: Path, remote=None) -> "LocalCache":
        override = os.environ.get("EDGEBUILD_CACHE_DIR")
        return cls(Path(override) if override else state_dir / "cache", remote)

    def gc_lock(self, shared: bool):
        return file_lock(self.root / "gc.lock", shared=shared)

    def clean_stale_tmp(self) -> int:
        """Remove temp folders left by builds that were killed (their pid is gone)."""
        removed = 0
        tmp = self.root / "tmp"
        for entry in tmp.glob("*") if tmp.is_dir() else []:
            pid = entry.name.split(".", 1)[0]
            if pid.isdigit() and not _pid_alive(int(pid)):
                shutil.rmtree(entry, ignore_errors=True)
                removed += 1
        return removed

    def stats(self) -> dict:
        blobs = list((self.root / "cas").glob("*/*"))
        entries = self.actions.keys()
        return {"dir": str(self.root), "action_entries": len(entries), "blobs": len(blobs),
                "blob_bytes": sum(b.stat().st_size for b in blobs),
                "trees": len(list((self.root / "trees").glob("*")))}

    def gc(self, keep_keys: set[str], max_age_days: float) -> dict:
        """Drop action entries neither in `keep_keys` nor used within `max_age_days`, then every
        blob and tree no kept entry refers to."""
        cutoff = time.time() - max_age_days * 86400
        with self.gc_lock(shared=False):
            kept_blobs: set[str] = set()
            kept_trees: set[str] = set()
            removed_entries = 0
            for path in self.actions.keys():
                try:
                    entry = json.loads(path.read_bytes())
                except ValueError:
                    entry = None
                if entry is not None and (path.name in keep_keys or path.stat().st_mtime >= cutoff):
                    kept_blobs.update(self.store.blobs_of(entry["outputs"]))
                    kept_trees.update(r["digest"] for r in entry["outputs"].values() if r["type"] == "tree")
                else:
                    path.unlink()
                    removed_entries += 1
            freed = 0
            removed_blobs = 0
            for blob in (self.root / "cas").glob("*/*"):
                if blob.name not in kept_blobs:
                    freed += blob.stat().st_size
                    blob.unlink()
                    removed_blobs += 1
            for tree in (self.root / "trees").glob("*"):
                if tree.name not in kept_trees:
                    shutil.rmtree(tree, ignore_errors=True)
            self.clean_stale_tmp()
        return {"removed_entries": removed_entries, "removed_blobs": removed_blobs, "freed_bytes": freed}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
