"""bundles/index.json: every bundle in the folder with its hash, size, target, device and version,
signed (index.json.sig, Ed25519 over the exact bytes) so fleet tools can trust one small file.

The index carries an expiry (`expires`, as TUF's metadata does): a device given the index
(`loader.py install --index`) refuses it once expired, so a mirror cannot freeze a fleet on old
releases by replaying a stale index forever. The expiry counts from the start of the current UTC
day, so indexes written the same day stay byte-identical."""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edgebuild.bundle.errors import BundleError
from edgebuild.bundle.keys import key_id
from edgebuild.bundle.archive import read_signed_head
from edgebuild.bundle.portable import parse_semver, sha256_stream

INDEX_NAME = "index.json"
INDEX_SIG_NAME = "index.json.sig"
DEFAULT_EXPIRY_DAYS = 90
EXPIRES_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def index_expires(expiry_days: int = DEFAULT_EXPIRY_DAYS, now: float | None = None) -> str:
    """The expiry written into an index made at `now`: the start of that UTC day plus the days."""
    day = int(time.time() if now is None else now) // 86400 * 86400
    return time.strftime(EXPIRES_FORMAT, time.gmtime(day + expiry_days * 86400))


def update_index(
    bundles_dir: Path,
    key: Ed25519PrivateKey,
    expiry_days: int = DEFAULT_EXPIRY_DAYS,
    now: float | None = None,
) -> Path:
    """Rewrite bundles_dir/index.json and index.json.sig from the *.tar.gz files present. Every
    bundle must carry a manifest signed by this same key: the index vouches for each entry. The
    index expires `expiry_days` after the start of the current UTC day (`now` for tests)."""
    bundles_dir = Path(bundles_dir)
    bundles_dir.mkdir(parents=True, exist_ok=True)
    public = key.public_key()
    entries = []
    for path in sorted(bundles_dir.glob("*.tar.gz")):
        # Only the signed head is read: the archive was checked when it was written, and a fleet
        # tool verifies the bundle it downloads anyway.
        head = read_signed_head(path)
        if head is None:
            raise BundleError(
                f"cannot index {path}: not an edgebuild bundle (no manifest.json and "
                "manifest.sig at its start)"
            )
        manifest_bytes, signature = head
        try:
            public.verify(signature, manifest_bytes)
        except InvalidSignature:
            raise BundleError(
                f"cannot index {path}: it is not signed by the index key {key_id(public)}; "
                "remove it or rebuild it with this key"
            ) from None
        manifest = json.loads(manifest_bytes)
        with open(path, "rb") as handle:
            sha256, size = sha256_stream(handle)
        entries.append(
            {
                "file": path.name,
                "sha256": sha256,
                "size": size,
                "project": manifest["project"],
                "target": manifest["target"],
                "device": manifest.get("device"),
                "version": manifest["version"],
                "runtime": manifest["runtime"],
                "status": manifest.get("status"),
            }
        )
    entries.sort(key=lambda e: (e["project"], e["target"], parse_semver(e["version"])))
    index = {
        "schema_version": 1,
        "signing": {"algorithm": "ed25519", "key_id": key_id(public)},
        "expires": index_expires(expiry_days, now),
        "bundles": entries,
    }
    data = json.dumps(index, sort_keys=True, indent=2, ensure_ascii=True).encode("ascii") + b"\n"
    index_path = bundles_dir / INDEX_NAME
    # Each file is replaced atomically; a reader racing the update sees a pair that fails to
    # verify, never a half-written file, and simply retries.
    _atomic_write(bundles_dir / INDEX_SIG_NAME, key.sign(data))
    _atomic_write(index_path, data)
    return index_path


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
