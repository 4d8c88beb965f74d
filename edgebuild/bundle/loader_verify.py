# ruff: noqa: F821  (reads the loader's globals: HERE, and portable.py's and ed25519_verify.py's names)
# Checking a bundle before anything in it is trusted: the manifest's Ed25519 signature (with the
# `cryptography` package, else an OpenSSL 3 `openssl` command, else the pure-Python verifier of
# ed25519_verify.py), then every checksum, for an unpacked folder or an archive.
#
# Copied verbatim into every generated loader.py (edgebuild/bundle/templates/_common.py.j2), after
# portable.py and ed25519_verify.py, whose names it reads. Python 3.7, standard library only.
import os
import shutil
import subprocess
import tempfile
from pathlib import Path


def _drop_own_bytecode():
    # `import loader` may have cached the loader in __pycache__/ before its first lines set
    # sys.dont_write_bytecode, which would make the folder fail verification. The loader calls this
    # right after pasting this module. Only the file of this very import goes; when run as
    # a script (`python loader.py verify`) nothing is removed, so a planted one is reported.
    cached = globals().get("__cached__")
    if __name__ == "__main__" or not cached or Path(cached).parent != HERE / "__pycache__":
        return
    for path in (cached, str(HERE / "__pycache__")):
        try:
            os.rmdir(path) if os.path.isdir(path) else os.unlink(path)
        except OSError:
            pass


class BundleRejected(Exception):
    """Verification failed; the message is the precise reason."""


class RuntimeUnavailable(Exception):
    """The runtime is not installed or cannot run on this host."""


def verify_signature(manifest_bytes, signature, public_key):
    """Check the Ed25519 signature of manifest.json against a PEM public key file."""
    public_key = Path(public_key)
    if not public_key.is_file():
        raise BundleRejected("public key file not found: %s" % public_key)
    if len(signature) != ED25519_SIGNATURE_SIZE:
        raise BundleRejected("manifest.sig is %d bytes, an Ed25519 signature is 64" % len(signature))
    problem = ed25519_public_key_problem(public_key.read_bytes())
    if problem:  # checked here for every backend: OpenSSL accepts small-order keys
        raise BundleRejected("cannot use public key %s: %s" % (public_key, problem))
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
        from cryptography.hazmat.primitives.serialization import load_pem_public_key
    except ImportError:
        _verify_signature_openssl(manifest_bytes, signature, public_key)
        return
    _checked_with("the cryptography package")
    try:
        key = load_pem_public_key(public_key.read_bytes())
    except ValueError as exc:
        raise BundleRejected("cannot read public key %s: %s" % (public_key, exc)) from None
    if not isinstance(key, Ed25519PublicKey):
        raise BundleRejected("public key %s is not an Ed25519 key" % public_key)
    try:
        key.verify(signature, manifest_bytes)
    except InvalidSignature:
        raise BundleRejected(
            "signature of manifest.json does not verify with %s "
            "(manifest altered, or signed by another key)" % public_key
        ) from None


SIGNATURE_CHECKED_WITH = None  # what checked the last signature; `verify` and `selftest` say it


def _checked_with(what):
    global SIGNATURE_CHECKED_WITH
    SIGNATURE_CHECKED_WITH = what


def _openssl3_version(openssl):
    """The version of an `openssl` command that can verify raw Ed25519 messages (OpenSSL 3 or
    newer; 1.1.1 lacks `pkeyutl -rawin`, LibreSSL lacks Ed25519 there), or None."""
    import re

    try:
        done = subprocess.run(
            [openssl, "version"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            universal_newlines=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.match(r"OpenSSL (\d+)\.(\d+)\S*", done.stdout.strip())
    if done.returncode != 0 or match is None or int(match.group(1)) < 3:
        return None
    return match.group(0)


def _verify_signature_pure_python(manifest_bytes, signature, public_key):
    _checked_with("the loader's pure-Python Ed25519 (RFC 8032; neither cryptography nor OpenSSL 3 found)")
    try:
        raw_key = ed25519_public_key_from_pem(public_key.read_bytes())
    except ValueError as exc:
        raise BundleRejected("cannot read public key %s: %s" % (public_key, exc)) from None
    if not ed25519_verify(raw_key, signature, manifest_bytes):
        raise BundleRejected(
            "signature of manifest.json does not verify with %s "
            "(manifest altered, or signed by another key)" % public_key
        )


def _verify_signature_openssl(manifest_bytes, signature, public_key):
    openssl = shutil.which("openssl")
    version = _openssl3_version(openssl) if openssl else None
    if version is None:
        _verify_signature_pure_python(manifest_bytes, signature, public_key)
        return
    _checked_with("the openssl command (%s)" % version)
    with tempfile.TemporaryDirectory(prefix="edgebuild-sig-") as tmp:
        data, sig = Path(tmp, "manifest.json"), Path(tmp, "manifest.sig")
        data.write_bytes(manifest_bytes)
        sig.write_bytes(signature)
        done = subprocess.run(
            [
                openssl,
                "pkeyutl",
                "-verify",
                "-pubin",
                "-inkey",
                str(public_key),
                "-rawin",
                "-in",
                str(data),
                "-sigfile",
                str(sig),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            universal_newlines=True,
        )
    if done.returncode != 0:
        if "Signature Verification Failure" in done.stdout:
            raise BundleRejected(
                "signature of manifest.json does not verify with %s "
                "(manifest altered, or signed by another key)" % public_key
            )
        raise BundleRejected(
            "openssl could not check the signature with %s: %s"
            % (public_key, done.stdout.strip().splitlines()[-1:] or "no output")
        )


def _checked(manifest_bytes, signature, found, root, public_key):
    # The signature comes first: once it holds, the manifest (and so every checksum) is trusted.
    if public_key is not None:
        verify_signature(manifest_bytes, signature, public_key)
    try:
        return check_manifest(manifest_bytes, found, root)
    except ArchiveRejected as exc:
        raise BundleRejected(str(exc)) from None


def verify_folder(folder=None, public_key=None):
    """Verify an unpacked bundle folder; returns its manifest. Raises BundleRejected."""
    folder = Path(folder) if folder is not None else HERE
    try:
        manifest_bytes, signature, found = scan_folder(folder)
    except ArchiveRejected as exc:
        raise BundleRejected(str(exc)) from None
    return _checked(manifest_bytes, signature, found, None, public_key)


def unpack_archive(archive, dest, public_key=None):
    """Safely unpack and verify a bundle archive into dest/<bundle folder>/; returns that folder.
    The signature is checked on the archive's head before any payload byte is read, and only
    files the manifest lists are written, each within its declared size. On any failure the
    partial folder is removed and BundleRejected is raised."""
    dest = Path(dest)
    before = set(os.listdir(str(dest)))
    try:
        root, _manifest = read_archive(archive, dest, _signature_check(public_key))
    except (ArchiveRejected, BundleRejected, OSError) as exc:
        for name in set(os.listdir(str(dest))) - before:
            shutil.rmtree(str(dest / name), ignore_errors=True)
        raise BundleRejected(str(exc)) from None
    return dest / root


def verify_archive(archive, public_key=None):
    """Verify a bundle archive without writing anything; returns its manifest."""
    try:
        return read_archive(archive, None, _signature_check(public_key))[1]
    except ArchiveRejected as exc:
        raise BundleRejected(str(exc)) from None


def _signature_check(public_key):
    if public_key is None:
        return None
    return lambda manifest_bytes, signature: verify_signature(manifest_bytes, signature, public_key)
