"""Atomic file writes and inter-process locks: what makes a killed build lose nothing and two
concurrent builds of one project safe."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def atomic_write_bytes(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write to a temp file in the same folder, fsync, then rename: readers see old or new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        _unlink_quietly(tmp)
        raise


def atomic_write_json(path: Path, value, mode: int = 0o644) -> None:
    atomic_write_bytes(path, (json.dumps(value, indent=1, sort_keys=True) + "\n").encode(), mode)


def atomic_copy(src: Path, dst: Path) -> None:
    """Copy a file or folder to `dst` so that `dst` appears complete or not at all."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent))
    staged = tmp / dst.name
    try:
        if src.is_dir():
            shutil.copytree(src, staged, copy_function=shutil.copyfile)
        else:
            shutil.copyfile(src, staged)
        if dst.is_dir() and not dst.is_symlink():
            # a folder cannot be renamed over a non-empty one: move the old one aside first
            old = tmp / "old"
            os.replace(dst, old)
        os.replace(staged, dst)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def relative_to_root(path: Path, root: Path) -> str:
    """`path` as shown to users and written into summaries: relative to the project when inside it."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def _unlink_quietly(path: str | Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


@contextmanager
def file_lock(path: Path, shared: bool = False) -> Iterator[None]:
    """An flock on `path`; released by the kernel if the process dies, so a kill never leaves it stuck."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
