"""Ed25519 signing keys: making them, finding the one a build signs with, loading public keys.

Private key files must not be readable or writable by group or others (like ssh): a key others on
the machine can read is not a release key. This is checked on POSIX systems only."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from edgebuild.bundle.errors import BundleError
from edgebuild.fsutil import file_lock

PRIVATE_NAME = "edgebuild.key"
PUBLIC_NAME = "edgebuild.pub.pem"
ENV_VAR = "EDGEBUILD_SIGNING_KEY"
DEV_KEY_DIR = Path(".edgebuild") / "keys"


def keygen(out_dir: Path) -> tuple[Path, Path]:
    """Write a new key pair: out_dir/edgebuild.key (PEM PKCS#8, mode 0600) and
    out_dir/edgebuild.pub.pem. Never overwrites an existing key."""
    out_dir = Path(out_dir)
    private_path, public_path = out_dir / PRIVATE_NAME, out_dir / PUBLIC_NAME
    for path in (private_path, public_path):
        if path.exists():
            raise BundleError(f"{path} already exists; keygen never overwrites a key")
    out_dir.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    # Created with 0600 from the start: no moment where the key is readable by others.
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(private_pem)
    public_path.write_bytes(public_pem(key.public_key()))
    return private_path, public_path


def public_pem(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def key_id(public_key: Ed25519PublicKey) -> str:
    """Short fingerprint recorded in manifests and the index: sha256 of the raw public key."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "ed25519:" + hashlib.sha256(raw).hexdigest()[:16]


def resolve_signing_key(project_dir: Path, configured: str | None) -> tuple[Ed25519PrivateKey, str]:
    """The key a build signs with, and a description of where it came from.

    Order: `configured` ([bundle].signing_key in targets.toml, relative to the project folder),
    then the EDGEBUILD_SIGNING_KEY environment variable (PEM text, or a path), then a development
    key under <project>/.edgebuild/keys/, created on first use."""
    project_dir = Path(project_dir)
    if configured:
        path = Path(configured).expanduser()
        if not path.is_absolute():
            path = project_dir / path
        if not path.is_file():
            raise BundleError(f"signing key {path} not found (targets.toml [bundle].signing_key)")
        return load_private_key(path), f"key file {path} (targets.toml [bundle].signing_key)"
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        if env.startswith("-----BEGIN"):
            return _parse_private_pem(
                env.encode(), f"{ENV_VAR} (PEM text)"
            ), f"{ENV_VAR} environment variable"
        path = Path(env).expanduser()
        if "\n" in env or "\0" in env or not _is_file(path):
            # the value is never shown: it may be key material without its PEM lines
            raise BundleError(
                f"{ENV_VAR} is neither a PEM key nor an existing key file (its value is not shown)"
            )
        return load_private_key(path), f"key file {path} ({ENV_VAR})"
    dev_dir = project_dir / DEV_KEY_DIR
    with file_lock(project_dir / ".edgebuild" / "keys.lock"):  # two concurrent first builds make one key
        if not (dev_dir / PRIVATE_NAME).exists():
            keygen(dev_dir)
    path = dev_dir / PRIVATE_NAME
    return load_private_key(
        path
    ), f"development key {path} (not for release: set [bundle].signing_key or {ENV_VAR})"


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):  # e.g. a name too long: errors that would repeat the value
        return False


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """Load a PEM Ed25519 private key, refusing files that group or others can access."""
    path = Path(path)
    if os.name == "posix":
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise BundleError(
                f"private key {path} has mode {mode:04o}: others can read it; run `chmod 600 {path}`"
            )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BundleError(f"cannot read private key {path}: {exc.strerror}") from None
    return _parse_private_pem(data, str(path))


def _parse_private_pem(data: bytes, where: str) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise BundleError(
            f"private key {where} is password-protected; edgebuild needs an unencrypted key "
            "(keep it in a CI secret instead)"
        ) from None
    except ValueError:
        raise BundleError(f"{where} is not a PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise BundleError(f"private key {where} is not an Ed25519 key (make one with `edgebuild keygen`)")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BundleError(f"cannot read public key {path}: {exc.strerror}") from None
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        raise BundleError(f"{path} is not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise BundleError(f"public key {path} is not an Ed25519 key")
    from edgebuild.bundle.ed25519_verify import ed25519_public_key_problem

    problem = ed25519_public_key_problem(data)  # OpenSSL accepts small-order keys; devices do not
    if problem:
        raise BundleError(f"cannot use public key {path}: {problem}")
    return key
