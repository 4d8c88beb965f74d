"""`edgebuild delta OLD NEW`: a signed delta bundle that turns an installed release into the next.

The delta is itself a bundle archive (so devices read it with the same signature-first,
size-bounded reader as full bundles) whose signed manifest has `kind = "delta"` and a `delta`
table: the base and target versions with their manifest hashes, and per file of the new bundle
the segments that rebuild it from the active version (delta_apply.py). It carries the new
bundle's own manifest.json and manifest.sig, so the rebuilt folder is verified exactly as an
unpacked full bundle. Before writing, the delta is applied here and every rebuilt file compared
with the new bundle: a delta that would not reproduce it is never published.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edgebuild.bundle.archive import write_tar_gz
from edgebuild.bundle.delta_apply import DELTA_KIND, rebuild_bundle
from edgebuild.bundle.errors import BundleError
from edgebuild.bundle.keys import key_id, public_pem
from edgebuild.bundle.manifest import manifest_bytes
from edgebuild.bundle.portable import MANIFEST_NAME, SIGNATURE_NAME, path_problem, sha256_stream
from edgebuild.fleet.encode import ALL_CODECS, encode_file

DEFAULT_MAX_RATIO = 0.6
DELTA_SUFFIX = ".delta.tgz"  # not *.tar.gz: the bundle index lists full bundles only


@dataclass
class DeltaResult:
    path: Path | None  # None when the delta was refused (too large): ship the full bundle
    delta_bytes: int
    full_bytes: int
    reason: str
    tensors: dict
    base_version: str
    target_version: str

    @property
    def ratio(self) -> float:
        return self.delta_bytes / self.full_bytes if self.full_bytes else 0.0

    def as_dict(self) -> dict:
        return {
            "delta": str(self.path) if self.path else None,
            "delta_bytes": self.delta_bytes,
            "full_bytes": self.full_bytes,
            "ratio": round(self.ratio, 4),
            "reason": self.reason,
            "tensors": self.tensors,
            "from": self.base_version,
            "to": self.target_version,
        }


def delta_name(project: str, target: str, old: str, new: str) -> str:
    return f"{project}-{target}-{old}-to-{new}{DELTA_SUFFIX}"


def make_delta(
    old_bundle: Path,
    new_bundle: Path,
    out_dir: Path,
    key: Ed25519PrivateKey,
    max_ratio: float = DEFAULT_MAX_RATIO,
    codecs=ALL_CODECS,
) -> DeltaResult:
    """Write out_dir/<project>-<target>-<old>-to-<new>.delta.tgz, or refuse when it would be larger
    than max_ratio of the full new bundle. Both bundles must verify with `key`'s public half."""
    from edgebuild.bundle.verify import unpack_bundle

    public = key.public_key()
    with tempfile.TemporaryDirectory(prefix="edgebuild-delta-") as tmp:
        work = Path(tmp)
        pem = work / "signer.pub.pem"
        pem.write_bytes(public_pem(public))
        old_dir = unpack_bundle(old_bundle, work / "old", pem)
        new_dir = unpack_bundle(new_bundle, work / "new", pem)
        old_manifest = json.loads((old_dir / MANIFEST_NAME).read_bytes())
        new_manifest_bytes = (new_dir / MANIFEST_NAME).read_bytes()
        new_manifest = json.loads(new_manifest_bytes)
        _check_pair(old_manifest, new_manifest, old_bundle, new_bundle)

        files, patches, tensors = {}, {}, {"same": 0, "changed": 0, "new": 0}
        for index, name in enumerate(sorted(new_manifest["files"])):
            new = (new_dir / name).read_bytes()
            base = name if name in old_manifest["files"] else None
            encoded = encode_file(name, new, (old_dir / base).read_bytes() if base else None, codecs)
            for kind, count in encoded.tensors.items():
                tensors[kind] += count
            patch = f"patches/{index:04d}.bin" if encoded.patch else None
            if patch:
                patches[patch] = bytes(encoded.patch)
            files[name] = {
                "from": base,
                "patch": patch,
                "segments": encoded.segments,
                "format": encoded.fmt,
                "sha256": new_manifest["files"][name]["sha256"],
                "size": len(new),
            }

        delta_table = {
            "schema": 1,
            "codecs": sorted(set(codecs)),
            "base": _side(old_manifest, old_dir, old_bundle),
            "target": _side(new_manifest, new_dir, new_bundle),
            "files": files,
        }
        payload = {
            **patches,
            "target/manifest.json": new_manifest_bytes,
            "target/manifest.sig": (new_dir / SIGNATURE_NAME).read_bytes(),
        }
        manifest = {
            "schema_version": 1,
            "kind": DELTA_KIND,
            "project": new_manifest["project"],
            "target": new_manifest["target"],
            "version": new_manifest["version"],
            "device": new_manifest.get("device"),
            "runtime": new_manifest["runtime"],
            "files": {
                name: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
                for name, data in sorted(payload.items())
            },
            "delta": delta_table,
            "signing": {"algorithm": "ed25519", "key_id": key_id(public)},
        }
        data = manifest_bytes(manifest)
        _self_check(manifest, payload, old_dir, new_dir, work)

        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        final = out_dir / delta_name(
            new_manifest["project"], new_manifest["target"], old_manifest["version"], new_manifest["version"]
        )
        tmp_archive = work / final.name
        root = f"{new_manifest['project']}-{new_manifest['target']}-{new_manifest['version']}"
        write_tar_gz(tmp_archive, root, {**payload, MANIFEST_NAME: data, SIGNATURE_NAME: key.sign(data)})
        delta_size = tmp_archive.stat().st_size
        full_size = Path(new_bundle).stat().st_size
        result = DeltaResult(
            None, delta_size, full_size, "", tensors, old_manifest["version"], new_manifest["version"]
        )
        if delta_size > max_ratio * full_size:
            result.reason = (
                f"delta would be {result.ratio:.0%} of the full bundle (limit {max_ratio:.0%}): "
                "ship the full bundle"
            )
            final.unlink(missing_ok=True)
            return result
        # copied next to its final name, then renamed: a kill never leaves a partial delta there
        fd, staged = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=out_dir)
        os.close(fd)
        try:
            shutil.copyfile(tmp_archive, staged)
            os.chmod(staged, 0o644)
            os.replace(staged, final)
        finally:
            Path(staged).unlink(missing_ok=True)
        result.path = final
        result.reason = f"{result.ratio:.1%} of the full bundle"
        return result


def _side(manifest: dict, folder: Path, bundle: Path) -> dict:
    with open(bundle, "rb") as handle:
        bundle_sha, _ = sha256_stream(handle)
    return {
        "version": manifest["version"],
        "bundle_sha256": bundle_sha,
        "manifest_sha256": hashlib.sha256((folder / MANIFEST_NAME).read_bytes()).hexdigest(),
    }


def _check_pair(old: dict, new: dict, old_path: Path, new_path: Path) -> None:
    for key in ("project", "target"):
        if old.get(key) != new.get(key):
            raise BundleError(
                f"{old_path.name} and {new_path.name} are bundles of different {key}s "
                f"({old.get(key)} and {new.get(key)}): a delta joins two versions of one target"
            )
    if old.get("kind") not in (None, "bundle") or new.get("kind") == DELTA_KIND:
        raise BundleError("a delta is made from two full bundles, not from a delta")
    if old["version"] == new["version"]:
        raise BundleError(f"{old_path.name} and {new_path.name} have the same version {new['version']}")


def _self_check(manifest: dict, payload: dict, old_dir: Path, new_dir: Path, work: Path) -> None:
    """Apply the delta to the old folder as a device would and compare with the new bundle."""
    delta_dir = work / "delta"
    for name, data in payload.items():
        target = delta_dir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    rebuilt = work / "rebuilt"
    rebuild_bundle(manifest, str(delta_dir), str(old_dir), str(rebuilt), path_problem)
    for name in list(manifest["delta"]["files"]) + [MANIFEST_NAME, SIGNATURE_NAME]:
        if (rebuilt / name).read_bytes() != (new_dir / name).read_bytes():
            raise BundleError(f"internal error: the delta does not reproduce {name}; not written")
