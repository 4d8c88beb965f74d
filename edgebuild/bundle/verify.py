"""Checking a bundle archive (signature, every checksum, archive hygiene) and unpacking one safely.

The archive rules live in portable.py, which every generated loader.py carries verbatim, so
`edgebuild verify` and a device reject the same things for the same reasons: the signed head is
checked before any payload byte is read, and only files the manifest lists are accepted."""

from __future__ import annotations

import shutil
from pathlib import Path

from cryptography.exceptions import InvalidSignature

from edgebuild.bundle.errors import BundleError, BundleInvalid
from edgebuild.bundle.keys import load_public_key
from edgebuild.bundle.portable import ED25519_SIGNATURE_SIZE, ArchiveRejected, read_archive


def verify_bundle(path: Path, public_key: Path | None) -> dict:
    """Verify a bundle archive and return its manifest, writing nothing. Without a public key only
    the checksums and archive rules are checked (anyone can recompute checksums, so only the
    signature proves who made the bundle). Raises BundleInvalid with the precise reason, or
    BundleError when the public key file itself is unusable."""
    return _verified(Path(path), public_key, dest=None)


def unpack_bundle(path: Path, dest: Path, public_key: Path | None) -> Path:
    """Verify while unpacking into dest/<bundle folder>/ and return that folder. Writes nothing
    outside it; on failure the partial folder is removed."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    before = set(dest.iterdir())
    try:
        manifest = _verified(Path(path), public_key, dest=dest)
    except BaseException as exc:
        for created in set(dest.iterdir()) - before:
            shutil.rmtree(created, ignore_errors=True)
        if isinstance(exc, FileExistsError):
            raise BundleError(f"cannot unpack into {exc.filename}: it already exists") from None
        raise
    return dest / f"{manifest['project']}-{manifest['target']}-{manifest['version']}"


def _verified(path: Path, public_key: Path | None, dest: Path | None) -> dict:
    key = load_public_key(public_key) if public_key is not None else None  # BundleError if unusable
    if not path.is_file():
        raise BundleInvalid(f"{path}: no such bundle file")

    def check_signature(manifest_bytes: bytes, signature: bytes) -> None:
        # runs on the archive's head, before any payload byte is read
        if key is None:
            return
        if len(signature) != ED25519_SIGNATURE_SIZE:
            raise BundleInvalid(f"manifest.sig is {len(signature)} bytes, an Ed25519 signature is 64")
        try:
            key.verify(signature, manifest_bytes)
        except InvalidSignature:
            raise BundleInvalid(
                f"signature of manifest.json does not verify with {public_key} "
                "(manifest altered, or signed by another key)"
            ) from None

    try:
        return read_archive(path, dest, check_signature)[1]
    except ArchiveRejected as exc:
        raise BundleInvalid(str(exc)) from None
