# Bundle checks that need nothing but the standard library.
#
# edgebuild imports this module, and the source text is pasted verbatim into every generated
# loader.py, so a device and `edgebuild verify` apply exactly the same rules. Keep it importable on
# Python 3.8 (JetPack 5): no `X | Y` annotations, no 3.9+ string methods, no third-party imports.
import gzip
import hashlib
import re
import tarfile
import zlib

MANIFEST_NAME = "manifest.json"
SIGNATURE_NAME = "manifest.sig"
SIGNED_NAMES = (MANIFEST_NAME, SIGNATURE_NAME)  # the two files the manifest cannot list
ED25519_SIGNATURE_SIZE = 64

# semver.org 2.0.0, without build metadata ordering (build metadata never affects precedence)
_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?"
    r"(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$"
)


def parse_semver(text):
    """Return a sortable key for a semantic version, or None if `text` is not one."""
    match = _SEMVER.match(text or "")
    if not match:
        return None
    core = tuple(int(part) for part in match.group(1, 2, 3))
    pre = match.group(4)
    if pre is None:
        # a release sorts after every pre-release of the same core version
        return core + ((1,),)
    fields = []
    for ident in pre.split("."):
        # numeric identifiers sort before alphanumeric ones, and numerically among themselves
        fields.append((0, int(ident), "") if ident.isdigit() else (1, 0, ident))
    return core + ((0, tuple(fields)),)


def compare_versions(a, b):
    """-1, 0 or 1 as version `a` precedes, equals or follows `b` (both must be valid)."""
    key_a, key_b = parse_semver(a), parse_semver(b)
    if key_a is None or key_b is None:
        raise ValueError("not a semantic version: %r" % (a if key_a is None else b))
    return (key_a > key_b) - (key_a < key_b)


def member_problem(member, root):
    """Why a tar member must not be unpacked, or None. `root` is the bundle's single top folder
    (None while it is still unknown: then any single safe path component is accepted)."""
    name = member.name
    if name.startswith("/") or name.startswith("\\") or re.match(r"^[A-Za-z]:", name):
        return "absolute path in archive: %s" % name
    parts = name.replace("\\", "/").split("/")
    if any(part in ("..",) for part in parts):
        return "path with '..' in archive: %s" % name
    if parts and parts[-1] == "" and member.isdir():
        parts = parts[:-1]  # "folder/" is a normal way to name a folder entry
    if not parts or any(part in ("", ".") for part in parts):
        return "unnormalised path in archive: %r" % name
    if member.issym() or member.islnk():
        return "link in archive: %s -> %s" % (name, member.linkname)
    if not (member.isreg() or member.isdir()):
        return "special file (device, fifo or other) in archive: %s" % name
    if root is not None and parts[0] != root:
        return "entry outside the bundle folder %s/: %s" % (root, name)
    return None


def relative_name(member_name):
    """The path of a member inside the bundle folder ('' for the folder itself)."""
    parts = member_name.split("/")
    return "/".join(parts[1:])


def sha256_stream(stream, chunk=1 << 20):
    """(hex sha256, size) of a binary stream, read in chunks so multi-GB models fit in memory."""
    digest = hashlib.sha256()
    size = 0
    while True:
        block = stream.read(chunk)
        if not block:
            return digest.hexdigest(), size
        digest.update(block)
        size += len(block)


def manifest_files_problem(manifest, found):
    """Compare what an archive or folder holds (`found`: relative path -> (sha256, size)) with the
    manifest's `files` table. Returns the first problem as a sentence, or None."""
    listed = manifest.get("files")
    if not isinstance(listed, dict):
        return "manifest.json has no 'files' table"
    for name in sorted(found):
        if name not in listed:
            return "file not listed in manifest: %s" % name
    for name in sorted(listed):
        if name not in found:
            return "file listed in manifest is missing: %s" % name
        entry = listed[name]
        sha, size = found[name]
        if not isinstance(entry, dict) or entry.get("size") != size:
            return "size mismatch for %s: manifest says %s bytes, found %d" % (
                name, entry.get("size") if isinstance(entry, dict) else "?", size)
        if entry.get("sha256") != sha:
            return "checksum mismatch for %s" % name
    return None


def manifest_header_problem(manifest, root):
    """Check the fields every later step relies on; `root` is the folder name the archive used."""
    for key in ("project", "target", "version", "runtime", "files"):
        if key not in manifest:
            return "manifest.json lacks '%s'" % key
    if parse_semver(manifest["version"]) is None:
        return "manifest version is not a semantic version: %r" % manifest["version"]
    expected_root = "%s-%s-%s" % (manifest["project"], manifest["target"], manifest["version"])
    if root is not None and root != expected_root:
        return "bundle folder is %s/ but the manifest describes %s" % (root, expected_root)
    return None


class ArchiveRejected(Exception):
    """The bundle archive or folder breaks a rule; the message is the precise reason."""


def _read_archive(path):
    # Decompression goes through the gzip module, which checks the CRC and length trailer, and the
    # stream is drained to its end, so a truncated archive fails even when the cut falls in the tar
    # padding after the last member.
    try:
        with gzip.open(str(path), "rb") as raw:
            with tarfile.open(fileobj=raw, mode="r|") as tar:
                for member in tar:
                    yield member, (tar.extractfile(member) if member.isreg() else None)
            while raw.read(1 << 20):
                pass
    except _CORRUPT as exc:
        raise ArchiveRejected(_corrupt_reason(exc)) from None


# What reading a damaged archive raises (member data is read lazily, so scan_archive catches these too)
_CORRUPT = (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile)


def _corrupt_reason(exc):
    return "archive is truncated or not a gzip tar file (%s)" % exc


def scan_archive(path, dest=None):
    """Check every entry of a bundle archive and hash its files; with `dest`, also unpack them
    under dest/<bundle folder>/ (which must not exist yet). Nothing is ever written outside that
    folder: entries are checked before use, only plain files and folders are created, and files
    are opened exclusively so no entry can overwrite another.

    Returns (root folder name, manifest bytes, signature bytes, {relative path: (sha256, size)}).
    Raises ArchiveRejected. On failure, whatever was unpacked is left for the caller to delete
    (it lies inside dest/<root>/ only)."""
    try:
        return _scan(path, dest)
    except _CORRUPT as exc:
        raise ArchiveRejected(_corrupt_reason(exc)) from None


def _scan(path, dest):
    import os
    root = None
    found = {}
    signed = {}
    folders = set()
    base = None
    for member, stream in _read_archive(path):
        problem = member_problem(member, root)
        if problem:
            raise ArchiveRejected(problem)
        rel = relative_name(member.name.rstrip("/"))
        if root is None:
            root = member.name.split("/")[0]
            if dest is not None:
                base = os.path.join(os.path.realpath(str(dest)), root)
                os.mkdir(base)  # fails if it exists: never unpack over something else
        if rel == "":
            if not member.isdir():
                raise ArchiveRejected("file at the top of the archive, outside any bundle folder: %s" % member.name)
            continue
        if rel in found or rel in signed or (rel in folders and not member.isdir()):
            raise ArchiveRejected("duplicate entry in archive: %s" % member.name)
        parents = rel.split("/")[:-1]
        for depth in range(1, len(parents) + 1):
            if "/".join(parents[:depth]) in found:
                raise ArchiveRejected("entry inside a file in archive: %s" % member.name)
        target = None
        if base is not None:
            target = os.path.join(base, *rel.split("/"))
            if os.path.commonpath([base, os.path.realpath(os.path.dirname(target))]) != base:
                raise ArchiveRejected("entry would be written outside the bundle folder: %s" % member.name)
        if member.isdir():
            if rel in found or rel in signed:
                raise ArchiveRejected("duplicate entry in archive: %s" % member.name)
            folders.add(rel)
            if target is not None:
                os.makedirs(target, exist_ok=True)
            continue
        if rel in SIGNED_NAMES:
            if member.size > (1 << 24):
                raise ArchiveRejected("%s is implausibly large (%d bytes)" % (rel, member.size))
            data = stream.read()
            signed[rel] = data
            if target is not None:
                with open(target, "xb") as out:
                    out.write(data)
            continue
        if target is None:
            found[rel] = sha256_stream(stream)
        else:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "xb") as out:
                found[rel] = sha256_stream(_Tee(stream, out))
    if root is None:
        raise ArchiveRejected("archive is empty")
    for name in SIGNED_NAMES:
        if name not in signed:
            raise ArchiveRejected("%s is missing from the bundle" % name)
    return root, signed[MANIFEST_NAME], signed[SIGNATURE_NAME], found


class _Tee(object):
    """Reads from a stream and copies what it read into a file."""

    def __init__(self, stream, out):
        self.stream, self.out = stream, out

    def read(self, size):
        block = self.stream.read(size)
        self.out.write(block)
        return block


def scan_folder(folder):
    """Hash an unpacked bundle folder: (manifest bytes, signature bytes, {relative path: (sha256,
    size)}). Python's own `__pycache__` folders are ignored (importing loader.py creates one);
    links and special files are rejected because an unpacked bundle never contains them."""
    import os
    found = {}
    signed = {}
    folder = str(folder)
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in sorted(dirnames + filenames):
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, folder).replace(os.sep, "/")
            if os.path.islink(full):
                raise ArchiveRejected("link in bundle folder: %s" % rel)
            if name in dirnames:
                continue
            if not os.path.isfile(full):
                raise ArchiveRejected("special file in bundle folder: %s" % rel)
            if rel in SIGNED_NAMES:
                with open(full, "rb") as handle:
                    signed[rel] = handle.read()
                continue
            with open(full, "rb") as handle:
                found[rel] = sha256_stream(handle)
    for name in SIGNED_NAMES:
        if name not in signed:
            raise ArchiveRejected("%s is missing from the bundle" % name)
    return signed[MANIFEST_NAME], signed[SIGNATURE_NAME], found


def check_manifest(manifest_bytes, found, root):
    """Parse manifest.json and check it against the files found. Returns the manifest dict;
    raises ArchiveRejected. The signature is checked separately (before trusting this result)."""
    import json
    try:
        manifest = json.loads(manifest_bytes.decode("utf-8"))
    except ValueError as exc:
        raise ArchiveRejected("manifest.json is not valid JSON (%s)" % exc) from None
    if not isinstance(manifest, dict):
        raise ArchiveRejected("manifest.json is not a JSON object")
    problem = manifest_header_problem(manifest, root) or manifest_files_problem(manifest, found)
    if problem:
        raise ArchiveRejected(problem)
    return manifest
