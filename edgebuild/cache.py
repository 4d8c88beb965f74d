"""The local cache: a content-addressed blob store and an action cache mapping keys to outputs.

Layout under <project>/.edgebuild/cache (or $EDGEBUILD_CACHE_DIR):
  cas/ab/<sha256>        output blobs, read-only, written by rename so never seen half-written
  ac/ab/<action key>     JSON: outputs (name -> file digest or tree), step metadata, status
  trees/<digest>/        folders (e.g. .mlpackage) materialised from blobs for downstream steps
Builds take the gc lock shared; `cache gc` takes it exclusive, so it never deletes under a build.

With a remote cache (an HttpCache, see remote_cache.py) the action cache reads and writes through
it: a local miss fetches the remote entry and every blob it names (each verified by its sha256),
and a successful step's blobs are uploaded before its entry. A local hit never touches the network.

Entries are data from outside (a remote server, or a file anyone may have edited): every entry is
checked by `entry_problem` before a digest or a tree path in it names a file, and one that fails is
a miss. Digests are 64 lowercase hex digits; tree paths are relative, normalised and stay inside
their folder. With a stat cache attached (builds attach theirs), every blob is hashed when an entry
that names it is used and whenever it changed since: a blob whose bytes no longer match its name is
evicted with its entry, so the step runs again instead of shipping the wrong bytes.

With $EDGEBUILD_REMOTE_CACHE_KEY set (a secret shared by the trusted CI writers) every entry written
carries an HMAC-SHA256 over its action key and canonical bytes (`auth`), and remote entries without
a valid one are ignored. Without the key, remote entries are accepted only for steps whose results
a local verification step re-checks (see remote_trust.py), and their local copies are marked
`remote_unverified`: such a copy serves only where an unauthenticated remote hit would, so it never
stands in for a verification step, nor for anything once the key is set.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from edgebuild.errors import ConfigError
from edgebuild.fsutil import atomic_write_bytes, file_lock
from edgebuild.hashing import canonical_json, folder_digest, sha256_bytes, sha256_file, tree_files

AUTH_ENV = "EDGEBUILD_REMOTE_CACHE_KEY"
UNVERIFIED = "remote_unverified"  # marks a local copy of a remote entry taken without the key
MIN_AUTH_KEY = 32  # characters: `openssl rand -hex 32` gives 64
_DIGEST = re.compile(r"[0-9a-f]{64}")
MAX_TREE_FILES = 100_000
MAX_PATH_PARTS = 64


def is_digest(value) -> bool:
    return isinstance(value, str) and _DIGEST.fullmatch(value) is not None


def safe_relpath(rel) -> bool:
    """A tree member path that stays inside its folder: relative, '/'-separated, no '.', '..' or
    empty parts, no backslash or NUL (so no platform reads it as anything else)."""
    if not isinstance(rel, str) or not rel or len(rel) > 1024 or "\\" in rel or "\0" in rel:
        return False
    parts = rel.split("/")
    return len(parts) <= MAX_PATH_PARTS and all(p not in ("", ".", "..") for p in parts)


def _size_ok(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _record_problem(record) -> str | None:
    if not isinstance(record, dict) or record.get("type") not in ("file", "tree"):
        return "an output record is not a file or tree"
    if not is_digest(record.get("digest")):
        return "a digest is not 64 lowercase hex digits"
    if not _size_ok(record.get("size")):
        return "an output size is not a non-negative integer"
    if record["type"] == "file":
        return None
    files = record.get("files")
    if not isinstance(files, dict) or len(files) > MAX_TREE_FILES:
        return "a tree has no file listing"
    for rel, member in files.items():
        if not safe_relpath(rel):
            return f"tree path {rel[:80]!r} leaves its folder" if isinstance(rel, str) else "bad tree path"
        if (
            not isinstance(member, dict)
            or not is_digest(member.get("digest"))
            or not _size_ok(member.get("size"))
            or not isinstance(member.get("exec", False), bool)
        ):
            return "a tree member record is malformed"
    for rel in files:  # "a" and "a/b" cannot both be files
        parts = rel.split("/")
        if any("/".join(parts[:i]) in files for i in range(1, len(parts))):
            return f"tree path {rel[:80]!r} lies under another file of the tree"
    if sha256_bytes(canonical_json(files)) != record["digest"]:
        return "a tree's digest does not match its listing"
    return None


def entry_problem(entry) -> str | None:
    """What makes `entry` unusable as an action-cache entry, or None. Nothing in it is trusted to
    name a file before this passes."""
    if not isinstance(entry, dict):
        return "not a JSON object"
    if not isinstance(entry.get("status"), str):
        return "no status"
    outputs = entry.get("outputs")
    if not isinstance(outputs, dict):
        return "no outputs"
    for name, record in outputs.items():
        if not safe_relpath(name) or "/" in name:
            return "an output name is not a plain file name"
        if problem := _record_problem(record):
            return problem
    if not isinstance(entry.get("metadata", {}), dict) or not isinstance(
        entry.get("message"), (str, type(None))
    ):
        return "metadata or message of the wrong type"
    if not isinstance(entry.get("auth", ""), str) or not isinstance(entry.get(UNVERIFIED, False), bool):
        return "auth or remote_unverified of the wrong type"
    return None


def declared_sizes(outputs: dict) -> dict[str, int]:
    """digest -> size of every blob an entry (already checked) names, the tree listings included."""
    sizes = {}
    for record in outputs.values():
        if record["type"] == "tree":
            sizes[record["digest"]] = len(canonical_json(record["files"]))
            sizes.update({f["digest"]: f["size"] for f in record["files"].values()})
        else:
            sizes[record["digest"]] = record["size"]
    return sizes


def listing_digest(record: dict) -> str:
    """The digest StatCache.digest gives the materialised file or folder of an output record."""
    if record["type"] == "file":
        return record["digest"]
    return folder_digest({rel: f["digest"] for rel, f in record["files"].items()})


def auth_key_from_env() -> bytes | None:
    """The shared secret of trusted cache writers, or None. Its value is never printed."""
    value = os.environ.get(AUTH_ENV, "")
    if not value:
        return None
    if len(value.strip()) < MIN_AUTH_KEY:
        raise ConfigError(
            f"{AUTH_ENV} is too short: use at least {MIN_AUTH_KEY} characters "
            "(e.g. the output of `openssl rand -hex 32`)"
        )
    return value.strip().encode()


def entry_mac(secret: bytes, key: str, entry: dict) -> str:
    """HMAC-SHA256 over the action key and the entry's canonical bytes (without `auth`): an entry
    cannot be altered, nor replayed under another action key, without the secret."""
    body = {k: v for k, v in entry.items() if k != "auth"}
    message = b"edgebuild action entry v1\n" + key.encode() + b"\n" + canonical_json(body)
    return "hmac-sha256:" + hmac.new(secret, message, hashlib.sha256).hexdigest()


class CorruptedBlob(Exception):
    """A content-store blob's bytes no longer hash to its name (it was evicted)."""


class ContentStore:
    def __init__(self, root: Path, stats=None) -> None:
        self.root = root
        self.stats = stats  # a StatCache: blobs are hashed on use (free while unchanged)

    def path(self, digest: str) -> Path:
        if not is_digest(digest):  # the last guard: a digest never becomes a path unchecked
            raise ValueError(f"not a sha256 digest: {str(digest)[:80]!r}")
        return self.root / "cas" / digest[:2] / digest

    def check(self, digest: str) -> str:
        """ "ok", "missing" or "corrupt" (the blob's bytes hash to something else: it is evicted)."""
        path = self.path(digest)
        if not path.is_file():
            return "missing"
        if self.stats is None or self.stats.digest(path) == digest:
            return "ok"
        self.evict(digest)
        return "corrupt"

    def evict(self, digest: str) -> None:
        try:
            self.path(digest).unlink()
        except FileNotFoundError:
            pass

    def _remember(self, path: Path, digest: str) -> None:
        if self.stats is not None:
            self.stats.remember(path, digest)

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def put_file(self, src: Path) -> dict:
        """Move `src` into the store (it must be on the same file system, e.g. under cache/tmp)."""
        digest = sha256_file(src)
        size = src.stat().st_size
        dst = self.path(digest)
        if dst.exists() and self.check(digest) == "ok":
            src.unlink()
        else:
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(src, 0o444)
            os.replace(src, dst)
            self._remember(dst, digest)
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
        return {
            "type": "tree",
            "digest": self.put_bytes(listing),
            "size": sum(f["size"] for f in files.values()),
            "files": files,
        }

    def tree_path(self, record: dict) -> Path:
        """A folder with the tree's files (hard links into the store), created once, atomically.
        `record` must have passed entry_problem: its paths stay inside the folder."""
        final = self.root / "trees" / self.path(record["digest"]).name
        if final.is_dir():
            if self.stats is None or self.stats.digest(final) == listing_digest(record):
                return final
            shutil.rmtree(final, ignore_errors=True)  # a member changed: made again from the blobs
        staging = Path(tempfile.mkdtemp(prefix="tree.", dir=self.tmp_dir()))
        for rel, entry in record["files"].items():
            if not safe_relpath(rel):
                raise ValueError(f"tree path {rel[:80]!r} leaves its folder")
            dst = staging / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(self.path(entry["digest"]), dst)
            except OSError:
                shutil.copyfile(self.path(entry["digest"]), dst)
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(staging, final)
        except OSError:  # another build materialised it first
            shutil.rmtree(staging, ignore_errors=True)
            return final
        for rel, entry in record["files"].items():  # linking changed the blobs' ctime
            self._remember(final / rel, entry["digest"])
            self._remember(self.path(entry["digest"]), entry["digest"])
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
    def __init__(self, root: Path, store: ContentStore, remote=None, auth_key: bytes | None = None) -> None:
        self.root, self.store = root, store
        self.remote = remote  # an HttpCache, or None; switched off when the server fails
        self.auth_key = auth_key  # $EDGEBUILD_REMOTE_CACHE_KEY: sign entries, accept only signed remote ones
        self._remote_lock = threading.Lock()
        self._remote_missed: set[str] = (
            set()
        )  # asked once this build: the scheduler asks again under its lock

    @property
    def remote_authenticated(self) -> bool:
        """Whether remote entries are only taken with a valid MAC (else see remote_trust.py)."""
        return self.auth_key is not None

    def _path(self, key: str) -> Path:
        if not is_digest(key):
            raise ValueError(f"not an action key: {str(key)[:80]!r}")
        return self.root / "ac" / key[:2] / key

    def get(self, key: str, remote: bool = True) -> dict | None:
        """The entry for `key`, or None when absent, malformed, or when one of its blobs is gone or
        corrupted (a corrupted blob is evicted with the entry). `remote=False`: the local cache only."""
        path = self._path(key)
        try:
            entry = json.loads(path.read_bytes())
        except (FileNotFoundError, ValueError, RecursionError):
            entry = None
        if entry is not None and (problem := entry_problem(entry)):
            _warn(f"action entry {key[:12]} in {self.root} is malformed ({problem}); treated as a miss")
            entry = None
        if entry is not None and entry.get(UNVERIFIED) and (not remote or self.auth_key is not None):
            entry = None  # taken from the server unauthenticated: good only where such a hit is
        if entry is not None:
            state = self._blobs_state(entry)
            if state == "ok":
                return entry
            if state == "corrupt":
                _unlink_quietly(path)
        if remote and self.remote is not None:
            return self._get_remote(key)
        return None

    def _blobs_state(self, entry: dict) -> str:
        """ "ok" when every blob the entry names is present and intact, else "missing" or "corrupt"."""
        for digest in dict.fromkeys(self.store.blobs_of(entry["outputs"])):
            state = self.store.check(digest)
            if state == "corrupt":
                _warn(
                    f"content-store blob {digest[:12]} does not match its digest; evicted, the step runs again"
                )
                return state
            if state == "missing":
                return state
        return "ok"

    def distrust(self, key: str) -> None:
        """Drop the local copy of an unauthenticated remote entry that failed verification, and
        never take the remote entry for `key` again: the step runs here next time."""
        atomic_write_bytes(self.root / "distrusted" / key[:2] / self._path(key).name, b"")
        _unlink_quietly(self._path(key))

    def touch(self, key: str) -> None:
        """Mark an entry as used now (gc keeps recently used entries)."""
        try:
            os.utime(self._path(key))
        except FileNotFoundError:
            pass

    def put(self, key: str, entry: dict) -> None:
        if self.auth_key is not None:
            entry["auth"] = entry_mac(self.auth_key, key, entry)
        data = entry_bytes(entry)
        atomic_write_bytes(self._path(key), data)
        if self.remote is not None and entry["status"] == "ok":
            self._put_remote(key, entry, data)

    def _get_remote(self, key: str) -> dict | None:
        """Read-through: the remote entry, once it passed entry_problem (and its MAC, with a key)
        and every blob it names is verified in the local store. Only successful entries are taken:
        whether a step defers depends on the host it ran on."""
        from edgebuild.remote_cache import RemoteCacheError, RemoteUnavailable

        remote = self.remote
        if remote is None or key in self._remote_missed:
            return None
        if self.auth_key is None and (self.root / "distrusted" / key[:2] / key).exists():
            return None  # its result failed a verification here before
        self._remote_missed.add(key)  # until it is found complete below
        try:
            data = remote.get_action(key)
            if data is None:
                return None
            try:
                entry = json.loads(data)
            except (ValueError, RecursionError):  # e.g. "[[[[..." nested past the parser's depth
                entry = None
            if problem := entry_problem(entry):
                _warn(f"remote cache {remote.url}: action entry {key[:12]} is malformed ({problem}); ignored")
                return None
            if self.auth_key is not None and not hmac.compare_digest(
                entry.get("auth", ""), entry_mac(self.auth_key, key, entry)
            ):
                _warn(
                    f"remote cache {remote.url}: action entry {key[:12]} is not authenticated by {AUTH_ENV}; "
                    "ignored, the step runs here"
                )
                return None
            if entry["status"] != "ok":
                return None
            sizes = declared_sizes(entry["outputs"])
            if sum(sizes.values()) > remote.max_bytes:
                _warn(
                    f"remote cache {remote.url}: action entry {key[:12]} names {sum(sizes.values())} bytes, "
                    f"over the limit of {remote.max_bytes}; ignored"
                )
                return None
            for digest, size in sizes.items():
                if self.store.check(digest) == "ok":
                    continue
                if not remote.get_blob(digest, self.store.path(digest), 0o444, max_bytes=size):
                    return None  # the server evicted a blob the entry needs: a miss
                self.store._remember(self.store.path(digest), digest)
        except RemoteUnavailable as exc:
            self._switch_off_remote(exc)
            return None
        except RemoteCacheError as exc:  # a corrupted or oversized blob
            _warn(f"{exc}; treated as a miss, the step runs again")
            return None
        if self.auth_key is None:  # remembered as such: see get()
            entry[UNVERIFIED] = True
            data = entry_bytes(entry)
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


def _unlink_quietly(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def _warn(message: str) -> None:
    print(f"edgebuild: warning: {message}", file=sys.stderr, flush=True)


@dataclass
class LocalCache:
    root: Path
    remote: object | None = None  # an HttpCache the action cache reads and writes through
    stat_cache: object | None = None  # a StatCache: blobs are re-hashed on use whenever they changed

    def __post_init__(self) -> None:
        self.store = ContentStore(self.root, self.stat_cache)
        self.actions = ActionCache(
            self.root, self.store, self.remote, auth_key_from_env() if self.remote is not None else None
        )

    @classmethod
    def for_project(cls, state_dir: Path, remote=None, stats=None) -> "LocalCache":
        override = os.environ.get("EDGEBUILD_CACHE_DIR")
        return cls(Path(override) if override else state_dir / "cache", remote, stats)

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
        return {
            "dir": str(self.root),
            "action_entries": len(entries),
            "blobs": len(blobs),
            "blob_bytes": sum(b.stat().st_size for b in blobs),
            "trees": len(list((self.root / "trees").glob("*"))),
        }

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
                except (ValueError, RecursionError):
                    entry = None
                if entry_problem(entry) is not None:
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
