"""Deterministic tar.gz writing: the same entries always give the same bytes.

Fixed metadata (mtime from SOURCE_DATE_EPOCH or 0, uid/gid 0, no user names, modes 0644/0755),
entries sorted with manifest.json and manifest.sig first (a device can check the signature
before the payload arrives), gzip header without file name and with mtime 0. Byte identity
across machines also needs the same zlib, which every CPython wheel of a platform shares."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from pathlib import Path, PurePosixPath

from edgebuild.bundle.errors import BundleError
from edgebuild.bundle.portable import SIGNED_NAMES, ArchiveRejected, read_archive_head

FILE_MODE = 0o644
EXEC_MODE = 0o755
DIR_MODE = 0o755
# Model weights barely compress: on benchmarks/bundle_throughput.py's data level 9 gave 0.789 of
# the size and level 1 gave 0.813, at 12x the time. Changing the level changes every bundle's bytes.
COMPRESS_LEVEL = 1


def source_date_epoch() -> int:
    value = os.environ.get("SOURCE_DATE_EPOCH", "0").strip() or "0"
    try:
        return max(0, int(value))
    except ValueError:
        raise BundleError(f"SOURCE_DATE_EPOCH must be an integer number of seconds, got {value!r}") from None


def entry_order(name: str) -> tuple:
    """Signed files first, then every path in sorted component order (parents before children)."""
    if name in SIGNED_NAMES:
        return (0, SIGNED_NAMES.index(name))
    return (1, PurePosixPath(name).parts)


def write_tar_gz(
    out: Path, root: str, files: dict[str, Path | bytes], executable: set[str] = frozenset()
) -> None:
    """Write out as <root>/<name> for every name in files (a file path or its bytes)."""
    mtime = source_date_epoch()
    folders = {str(parent) for name in files for parent in PurePosixPath(name).parents if str(parent) != "."}
    names = sorted(set(files) | folders, key=entry_order)
    with open(out, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=COMPRESS_LEVEL, mtime=0) as gz:
            with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
                tar.addfile(_info(root, tarfile.DIRTYPE, DIR_MODE, 0, mtime))
                for name in names:
                    arcname = f"{root}/{name}"
                    if name in folders and name not in files:
                        tar.addfile(_info(arcname, tarfile.DIRTYPE, DIR_MODE, 0, mtime))
                        continue
                    source = files[name]
                    mode = EXEC_MODE if name in executable else FILE_MODE
                    if isinstance(source, bytes):
                        tar.addfile(
                            _info(arcname, tarfile.REGTYPE, mode, len(source), mtime), io.BytesIO(source)
                        )
                    else:
                        with open(source, "rb") as handle:
                            size = os.fstat(handle.fileno()).st_size
                            tar.addfile(_info(arcname, tarfile.REGTYPE, mode, size, mtime), handle)


def _info(name: str, kind: bytes, mode: int, size: int, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.size = size
    info.mtime = mtime
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def read_signed_head(path: Path) -> tuple[bytes, bytes] | None:
    """manifest.json and manifest.sig of a bundle archive (they come first, so this reads only the
    start of the file); None if the file does not start that way."""
    try:
        _root, manifest, signature = read_archive_head(path)
    except (ArchiveRejected, OSError):
        return None
    return manifest, signature
