"""Assembling, signing and writing one bundle archive."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edgebuild.bundle.archive import read_signed_head, write_tar_gz
from edgebuild.bundle.errors import BundleError, VersionExists
from edgebuild.bundle.keys import key_id
from edgebuild.bundle.loaders import render_loader, render_readme
from edgebuild.bundle.manifest import LOADER_NAME, SELFTEST_NAME, build_manifest, manifest_bytes
from edgebuild.bundle.portable import MANIFEST_NAME, SIGNATURE_NAME, parse_semver, sha256_stream
from edgebuild.bundle.spec import BundleSpec
from edgebuild.runtimes import UnknownRuntime, get_runtime, runtimes

GENERATED = (LOADER_NAME, "README.md", "LoadModel.swift")
_NAME_OK = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-+")


def bundle_path(bundles_dir: Path, spec: BundleSpec) -> Path:
    return Path(bundles_dir) / f"{spec.folder_name}.tar.gz"


def write_bundle(spec: BundleSpec, bundles_dir: Path, key: Ed25519PrivateKey) -> Path:
    """Write bundles_dir/<project>-<target>-<version>.tar.gz. Writing the same bytes again is a
    no-op; a different bundle under an existing version raises VersionExists."""
    _check_spec(spec)
    files = _collect_files(spec)
    generated: dict[str, bytes] = {LOADER_NAME: render_loader(spec).encode("utf-8")}
    for name, data in get_runtime(spec.runtime).extra_files(spec).items():  # e.g. Core ML's LoadModel.swift
        _check_inner_name(name)
        if name in generated or name in files or name in ("README.md", MANIFEST_NAME, SIGNATURE_NAME):
            raise BundleError(f"runtime {spec.runtime!r} generates {name!r}, a name already in the bundle")
        generated[name] = data
    readme_files = sorted(set(files) | set(generated) | {"README.md", MANIFEST_NAME, SIGNATURE_NAME})
    generated["README.md"] = render_readme(spec, readme_files).encode("utf-8")
    table = {name: _hash_file(path) for name, path in files.items()}
    table.update({name: (hashlib.sha256(data).hexdigest(), len(data)) for name, data in generated.items()})
    manifest = manifest_bytes(build_manifest(spec, table, key_id(key.public_key())))
    contents: dict[str, Path | bytes] = {
        **files,
        **generated,
        MANIFEST_NAME: manifest,
        SIGNATURE_NAME: key.sign(manifest),
    }

    bundles_dir = Path(bundles_dir)
    bundles_dir.mkdir(parents=True, exist_ok=True)
    final = bundle_path(bundles_dir, spec)
    if final.exists():
        # The manifest covers every file's hash, so an equal manifest means the same bundle; this
        # decides without recompressing a multi-GB model.
        if read_signed_head(final) == (manifest, contents[SIGNATURE_NAME]):
            return final
        raise _version_exists(final, spec)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=bundles_dir)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write_tar_gz(tmp, spec.folder_name, contents, executable={LOADER_NAME})
        os.chmod(tmp, 0o644)
        # link() fails if another build created the file meanwhile, where replace() would
        # silently overwrite a released version
        os.link(tmp, final)
        return final
    except FileExistsError:
        if read_signed_head(final) == (manifest, contents[SIGNATURE_NAME]):
            return final
        raise _version_exists(final, spec) from None
    finally:
        tmp.unlink(missing_ok=True)


def _version_exists(final: Path, spec: BundleSpec) -> VersionExists:
    return VersionExists(
        f"{final} already exists with different contents: version {spec.version} of "
        f"{spec.project}/{spec.target} was already bundled; bump [project].version"
    )


def _check_spec(spec: BundleSpec) -> None:
    if parse_semver(spec.version) is None:
        raise BundleError(
            f"version {spec.version!r} is not a semantic version such as 1.2.0 "
            "(targets.toml [project].version)"
        )
    for label, value in (("project name", spec.project), ("target name", spec.target)):
        if not value or not set(value) <= _NAME_OK:
            raise BundleError(
                f"{label} {value!r} cannot name a bundle file: use letters, digits, '.', '_', '-'"
            )
    try:
        get_runtime(spec.runtime)
    except UnknownRuntime:
        raise BundleError(
            f"runtime {spec.runtime!r} has no loader (known: {', '.join(runtimes())})"
        ) from None
    if spec.status not in ("built", "deferred"):
        raise BundleError(f"bundle status must be 'built' or 'deferred', got {spec.status!r}")
    if not spec.artifacts:
        raise BundleError(f"target {spec.target} has no artifact to bundle")


def _collect_files(spec: BundleSpec) -> dict[str, Path]:
    """Every file the bundle ships from disk, by its path inside the bundle."""
    files: dict[str, Path] = {}
    sources = [(name, Path(path)) for name, path in sorted(spec.extra_files.items())]
    sources += [(name, Path(path)) for name, path in sorted(spec.artifacts.items())]
    if spec.selftest is not None:
        sources.append((SELFTEST_NAME, Path(spec.selftest)))
    reserved = set(GENERATED) | {MANIFEST_NAME, SIGNATURE_NAME}
    for name, path in sources:
        _check_inner_name(name)
        if name in reserved or name in files:
            raise BundleError(f"bundle file name {name!r} is used twice or reserved")
        if path.is_symlink() and not path.exists():
            raise BundleError(f"bundle input {path} is a broken link")
        if path.is_dir():
            for item in sorted(path.rglob("*")):
                if item.is_file():
                    inner = f"{name}/{item.relative_to(path).as_posix()}"
                    files[inner] = item
                elif not item.is_dir():
                    raise BundleError(f"bundle input {item} is neither a file nor a folder")
        elif path.is_file():
            files[name] = path
        else:
            raise BundleError(f"bundle input {path} (bundled as {name}) does not exist")
    return files


def _check_inner_name(name: str) -> None:
    parts = name.split("/")
    if name.startswith("/") or any(part in ("", ".", "..") for part in parts) or "\\" in name:
        raise BundleError(
            f"bundle file name {name!r} must be a relative path without '.', '..' or backslashes"
        )


def _hash_file(path: Path) -> tuple[str, int]:
    with open(path, "rb") as handle:
        return sha256_stream(handle)
