"""Saving `.mlpackage` folders byte-for-byte reproducibly.

What coremltools 9 writes differently each time, and what we do about it:
- `Manifest.json` gets two fresh random UUIDs per save: replaced by UUIDs derived from each item's
  path and content (uuid5), so the same content always gets the same identifier.
- `model.mlmodel` is serialised with protobuf map order that varies between processes: the spec
  is re-serialised with `deterministic=True` (sorted map keys).
- The spec carries the conversion day (`com.github.apple.coremltools.conversion_date`): removed;
  when it was built is the bundle manifest's business, not the artifact's.
- File modes follow the umask (model.mlmodel is written 0600): set to 0644/0755.
`weight.bin` is already identical between runs. coremltools reloads the rewritten package; whether
Core ML on a Mac accepts content-derived manifest identifiers has not been checked on a Mac (they
are valid RFC 4122 UUIDs, which is all the format asks for).
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path

SPEC_RELATIVE = Path("Data/com.apple.CoreML/model.mlmodel")
CONVERSION_DATE_KEY = "com.github.apple.coremltools.conversion_date"
_NAMESPACE = uuid.UUID("5b0f1c59-5d1e-4b43-9c39-6c0f4e7b1d2a")  # edgebuild's namespace for uuid5


def spec_path(package: Path) -> Path:
    return package / SPEC_RELATIVE


def _content_digest(path: Path) -> str:
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        digest.update(file.relative_to(path).as_posix().encode() if file != path else b"")
        digest.update(file.read_bytes())
    return digest.hexdigest()


def _rewrite_spec(package: Path) -> None:
    from coremltools.proto import Model_pb2

    path = spec_path(package)
    spec = Model_pb2.Model()
    spec.ParseFromString(path.read_bytes())
    user_defined = spec.description.metadata.userDefined
    if CONVERSION_DATE_KEY in user_defined:
        del user_defined[CONVERSION_DATE_KEY]
    path.write_bytes(spec.SerializeToString(deterministic=True))


def _rewrite_manifest(package: Path) -> None:
    manifest_path = package / "Manifest.json"
    manifest = json.loads(manifest_path.read_text())
    data_root = package / "Data"
    renamed = {}
    entries = {}
    for old_id, item in manifest.get("itemInfoEntries", {}).items():
        content = _content_digest(data_root / item["path"])
        new_id = str(uuid.uuid5(_NAMESPACE, f"{item['path']}\n{content}"))
        renamed[old_id] = new_id
        entries[new_id] = item
    manifest["itemInfoEntries"] = dict(sorted(entries.items()))
    root = manifest.get("rootModelIdentifier")
    if root in renamed:
        manifest["rootModelIdentifier"] = renamed[root]
    manifest_path.write_text(json.dumps(manifest, indent=4, sort_keys=True) + "\n")


def _fix_modes(package: Path) -> None:
    os.chmod(package, 0o755)
    for path in package.rglob("*"):
        os.chmod(path, 0o755 if path.is_dir() else 0o644)


def normalise(package: Path) -> None:
    """Make a saved package's bytes a function of its content only."""
    _rewrite_spec(package)
    _rewrite_manifest(package)
    _fix_modes(package)


def save(mlmodel, package: Path) -> None:
    mlmodel.save(str(package))
    normalise(package)


def tree_digest(package: Path) -> str:
    """sha256 over the package's relative paths and bytes: equal digests mean identical packages."""
    return _content_digest(package)
