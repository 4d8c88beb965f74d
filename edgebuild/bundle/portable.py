# Bundle checks that need nothing but the standard library.
#
# edgebuild imports this module, and the source text is pasted verbatim into every generated
# loader.py, so a device and `edgebuild verify` apply exactly the same rules. Keep it importable on
# Python 3.7 (Coral's Mendel): no walrus, no `X | Y` or `list[str]` annotations, no 3.8+ names
# (gzip.BadGzipFile), no third-party imports.
#
# Archives are read by a small tar reader of our own rather than `tarfile`, because tarfile
# buffers a whole PAX header in memory and unpacks before anything is checked. Here the signed
# head (manifest.json, manifest.sig) comes first and is checked before any payload byte is read;
# after it, only files the manifest lists are accepted, each with its declared size as a hard
# limit, so neither an unlisted entry nor a gzip bomb can make a reader write or inflate more than
# the (signed) manifest declares.
import gzip
import hashlib
import re
import zlib

MANIFEST_NAME = "manifest.json"
SIGNATURE_NAME = "manifest.sig"
SIGNED_NAMES = (MANIFEST_NAME, SIGNATURE_NAME)  # the two files the manifest cannot list
ED25519_SIGNATURE_SIZE = 64

# What an archive may make a reader hold or walk before the manifest vouches for anything
MAX_SIGNED_FILE = 1 << 24  # bytes of manifest.json or manifest.sig
MAX_EXTENDED_HEADER = 1 << 16  # bytes of one PAX or GNU long-name header
MAX_PATH_LENGTH = 1024  # characters of one path
MAX_PATH_DEPTH = 32  # components of one path (an .mlpackage needs about 5)
TAR_BLOCK = 512
TAR_RECORD = 20 * TAR_BLOCK  # writers pad archives to whole records after the end marker

# semver.org 2.0.0, without build metadata ordering (build metadata never affects precedence)
_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?"
    r"(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$"
)


def parse_semver(text):
    """Return a sortable key for a semantic version, or None if `text` is not one."""
    match = _SEMVER.match(text or "") if isinstance(text, str) else None
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


def path_problem(name, what="path"):
    """Why `name` is not a safe relative path inside a bundle, or None."""
    if len(name) > MAX_PATH_LENGTH:
        return "%s longer than %d characters: %s..." % (what, MAX_PATH_LENGTH, name[:60])
    if name.count("/") + name.count("\\") >= MAX_PATH_DEPTH:
        return "%s deeper than %d folders: %s..." % (what, MAX_PATH_DEPTH, name[:60])
    if name.startswith("/") or name.startswith("\\") or re.match(r"^[A-Za-z]:", name):
        return "absolute %s: %s" % (what, name)
    parts = name.replace("\\", "/").split("/")
    if ".." in parts:
        return "%s with '..': %s" % (what, name)
    if any(part in ("", ".") for part in parts) or "\0" in name:
        return "unnormalised %s: %r" % (what, name)
    return None


def member_problem(member, root):
    """Why a tar member must not be unpacked, or None. `root` is the bundle's single top folder
    (None while it is still unknown: then any single safe path component is accepted)."""
    name = member.name
    if member.isdir() and name.endswith("/"):
        name = name[:-1]  # "folder/" is a normal way to name a folder entry
    problem = path_problem(name, "path in archive")
    if problem:
        return problem
    if member.issym() or member.islnk():
        return "link in archive: %s -> %s" % (name, member.linkname)
    if not (member.isreg() or member.isdir()):
        return "special file (device, fifo or other) in archive: %s" % name
    if root is not None and name.split("/")[0] != root:
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
                name,
                entry.get("size") if isinstance(entry, dict) else "?",
                size,
            )
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
    return manifest_table_problem(manifest["files"])


def manifest_table_problem(listed):
    """Why the manifest's `files` table cannot be followed safely, or None: every name a safe
    relative path, every entry a sha256 and a size, no name both a file and a folder."""
    if not isinstance(listed, dict):
        return "manifest.json has no 'files' table"
    for name in sorted(listed):
        entry = listed[name]
        problem = path_problem(name, "file name in manifest")
        if problem:
            return problem
        if name in SIGNED_NAMES:
            return "manifest lists %s, which cannot list itself" % name
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("size"), int)
            and entry["size"] >= 0
            and isinstance(entry.get("sha256"), str)
        ):
            return "manifest entry for %s needs a sha256 and a non-negative size" % name
    for name in sorted(implied_folders(listed) & set(listed)):
        return "manifest lists %s both as a file and as a folder" % name
    return None


def implied_folders(names):
    """Every folder the listed file names need (parents before children when sorted)."""
    folders = set()
    for name in names:
        parts = name.split("/")
        folders.update("/".join(parts[:depth]) for depth in range(1, len(parts)))
    return folders


class ArchiveRejected(Exception):
    """The bundle archive or folder breaks a rule; the message is the precise reason."""


# ---------------------------------------------------------------------------------------------
# A tar reader that holds at most one header block, one bounded extended header or one chunk
# ---------------------------------------------------------------------------------------------
# What decompressing a damaged file raises: BadGzipFile (3.8+, an OSError), OSError on 3.7
_DECOMPRESS_ERRORS = (EOFError, zlib.error, OSError)
_REGULAR_TYPES = (b"0", b"\0")
_TYPES = {b"1": "link", b"2": "symlink", b"3": "chr", b"4": "blk", b"5": "dir", b"6": "fifo"}


def _corrupt_reason(exc):
    return "archive is truncated or not a gzip tar file (%s)" % exc


class TarEntry(object):
    """One archive member as read from its header (the parts of tarfile.TarInfo rules use)."""

    def __init__(self, name, kind, size, linkname, offset):
        self.name, self.kind, self.size, self.linkname, self.offset = name, kind, size, linkname, offset

    def isreg(self):
        return self.kind == "file"

    def isdir(self):
        return self.kind == "dir"

    def issym(self):
        return self.kind == "symlink"

    def islnk(self):
        return self.kind == "link"


class TarReader(object):
    """Entries of a gzip-compressed tar archive, one at a time, in order."""

    def __init__(self, fileobj):
        self._file = gzip.GzipFile(fileobj=fileobj, mode="rb")
        self.offset = 0  # position in the uncompressed tar stream
        self._left = 0  # unread data bytes of the current entry
        self._padding = 0  # zero bytes after that data, up to the next block
        self.ended = False

    def _read(self, size):
        try:
            data = self._file.read(size)
        except _DECOMPRESS_ERRORS as exc:
            if self.ended and "Not a gzipped file" in str(exc):
                raise ArchiveRejected("trailing data after the end of the archive (%s)" % exc) from None
            raise ArchiveRejected(_corrupt_reason(exc)) from None
        self.offset += len(data)
        return data

    def _exact(self, size):
        data = b""
        while len(data) < size:
            block = self._read(size - len(data))
            if not block:
                raise ArchiveRejected(
                    "archive is truncated (it ends inside an entry, at byte %d of the tar stream)"
                    % self.offset
                )
            data += block
        return data

    def read(self, size):
        """Up to `size` bytes of the current entry's data (b"" once it is all read)."""
        size = min(size, self._left)
        if size <= 0:
            return b""
        data = self._exact(size)
        self._left -= len(data)
        return data

    def next(self):
        """The next entry, or None after the end-of-archive marker (and nothing after it)."""
        while self._left:
            self.read(1 << 20)
        self._exact(self._padding)
        self._padding = 0
        overrides = {}
        while True:
            start = self.offset
            block = self._exact(TAR_BLOCK)
            if block == b"\0" * TAR_BLOCK:
                self._finish()
                return None
            entry = _parse_header(block, start)
            if entry.kind in ("pax", "pax-global", "gnu-name", "gnu-link"):
                if entry.size > MAX_EXTENDED_HEADER:
                    raise ArchiveRejected(
                        "%s header of %d bytes at byte %d of the archive (limit %d)"
                        % (
                            "PAX" if entry.kind.startswith("pax") else "GNU long-name",
                            entry.size,
                            start,
                            MAX_EXTENDED_HEADER,
                        )
                    )
                data = self._exact(_padded(entry.size))[: entry.size]
                if entry.kind == "pax-global":
                    raise ArchiveRejected("global PAX header in archive (bundles never have one)")
                if entry.kind == "pax":
                    overrides.update(_parse_pax(data, start))
                else:
                    overrides["path" if entry.kind == "gnu-name" else "linkpath"] = _decode(
                        data.split(b"\0", 1)[0], start
                    )
                continue
            if "path" in overrides:
                entry.name = overrides["path"]
            if "linkpath" in overrides:
                entry.linkname = overrides["linkpath"]
            if "size" in overrides:
                entry.size = overrides["size"]
            if entry.kind in ("file", "other"):
                # data follows only these (tar writers store 0 for folders and links)
                self._left, self._padding = entry.size, _padded(entry.size) - entry.size
            return entry

    def _finish(self):
        # The end marker is followed by zero blocks up to a whole record and then the end of the
        # stream; a bounded read checks that, so appended data (or a bomb) is never inflated.
        self.ended = True
        rest = self._read(2 * TAR_RECORD + 1)
        if len(rest) > 2 * TAR_RECORD or rest.strip(b"\0"):
            raise ArchiveRejected(
                "trailing data after the end of the archive (at byte %d of the tar stream)"
                % (self.offset - len(rest))
            )
        if self._read(1):
            raise ArchiveRejected("trailing data after the end of the archive")


def _padded(size):
    return (size + TAR_BLOCK - 1) // TAR_BLOCK * TAR_BLOCK


def _cstring(field):
    return field.split(b"\0", 1)[0]


def _decode(raw, offset):
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ArchiveRejected("path in archive is not UTF-8 (header at byte %d)" % offset) from None


def _number(field, offset):
    if field[:1] == b"\x80":  # GNU base-256 for values that do not fit in octal
        return int.from_bytes(field[1:], "big")
    text = field.replace(b"\0", b" ").strip()
    try:
        return int(text, 8) if text else 0
    except ValueError:
        raise ArchiveRejected("damaged tar header at byte %d (bad number %r)" % (offset, field)) from None


def _parse_header(block, offset):
    stored = _number(block[148:156], offset)
    blanked = block[:148] + b" " * 8 + block[156:]
    if stored not in (sum(blanked), sum(b - 256 if b > 127 else b for b in bytearray(blanked))):
        raise ArchiveRejected(
            "archive is not a tar file or is damaged (header checksum mismatch at byte %d)" % offset
        )
    name = _cstring(block[0:100])
    if block[257:263] == b"ustar\0":
        prefix = _cstring(block[345:500])
        if prefix:
            name = prefix + b"/" + name
    flag = block[156:157]
    kind = {b"x": "pax", b"g": "pax-global", b"L": "gnu-name", b"K": "gnu-link"}.get(flag)
    if kind is None:
        kind = "file" if flag in _REGULAR_TYPES else _TYPES.get(flag, "other")
    return TarEntry(
        _decode(name, offset),
        kind,
        _number(block[124:136], offset),
        _decode(_cstring(block[157:257]), offset),
        offset,
    )


def _parse_pax(data, offset):
    """The records of a PAX extended header that matter here: path, linkpath, size."""
    values = {}
    position = 0
    while position < len(data):
        space = data.find(b" ", position)
        try:
            length = int(data[position:space])
        except ValueError:
            length = 0
        record = data[position : position + length]
        if (
            space < 0
            or length <= space - position
            or len(record) != length
            or not record.endswith(b"\n")
            or b"=" not in record
        ):
            raise ArchiveRejected("damaged PAX header at byte %d of the archive" % offset)
        key, _, value = record[space - position + 1 : -1].partition(b"=")
        if key in (b"path", b"linkpath"):
            values[key.decode("ascii")] = _decode(value, offset)
        elif key == b"size":
            if not value.isdigit():
                raise ArchiveRejected(
                    "damaged PAX header at byte %d of the archive (size %r)" % (offset, value)
                )
            values["size"] = int(value)
        position += length
    return values


# ---------------------------------------------------------------------------------------------
# Reading a bundle archive: signed head first, then only what the manifest lists
# ---------------------------------------------------------------------------------------------
def read_head(tar):
    """Read the bundle folder entry, manifest.json and manifest.sig, which must come first.
    Returns (root folder name, manifest bytes, signature bytes)."""
    root = None
    head = {}
    while len(head) < len(SIGNED_NAMES):
        entry = tar.next()
        missing = [name for name in SIGNED_NAMES if name not in head][0]
        if entry is None:
            if root is None:
                raise ArchiveRejected("archive is empty")
            raise ArchiveRejected("%s is missing from the bundle" % missing)
        problem = member_problem(entry, root)
        if problem:
            raise ArchiveRejected(problem)
        name = entry.name[:-1] if entry.name.endswith("/") else entry.name
        rel = relative_name(name)
        if root is None:
            root = name.split("/")[0]
            if rel == "" and entry.isdir():
                continue
        if rel in head:
            raise ArchiveRejected("duplicate entry in archive: %s" % entry.name)
        if rel == "" and not entry.isdir():
            raise ArchiveRejected(
                "file at the top of the archive, outside any bundle folder: %s" % entry.name
            )
        if rel not in SIGNED_NAMES or not entry.isreg():
            raise ArchiveRejected(
                "%s is missing from the head of the bundle (%s comes first; the signed "
                "manifest must precede the payload)" % (missing, entry.name)
            )
        if entry.size > MAX_SIGNED_FILE:
            raise ArchiveRejected("%s is implausibly large (%d bytes)" % (rel, entry.size))
        head[rel] = tar.read(entry.size)
    return root, head[MANIFEST_NAME], head[SIGNATURE_NAME]


def parse_manifest(manifest_bytes, root):
    """The manifest as a dict, after the checks every later step relies on. Raises ArchiveRejected."""
    import json

    try:
        manifest = json.loads(manifest_bytes.decode("utf-8"))
    except ValueError as exc:
        raise ArchiveRejected("manifest.json is not valid JSON (%s)" % exc) from None
    if not isinstance(manifest, dict):
        raise ArchiveRejected("manifest.json is not a JSON object")
    problem = manifest_header_problem(manifest, root)
    if problem:
        raise ArchiveRejected(problem)
    return manifest


def read_archive_head(path):
    """(root, manifest bytes, signature bytes) of a bundle archive, reading only its start."""
    with open(str(path), "rb") as raw:
        return read_head(TarReader(raw))


def read_archive(path, dest=None, check_head=None):
    """Check a bundle archive in one pass, in the order a device receives it; with `dest`, also
    unpack it under dest/<bundle folder>/ (which must not exist yet).

    1. The head: the bundle folder, manifest.json and manifest.sig; nothing else may come first.
    2. check_head(manifest bytes, signature bytes), e.g. the signature check, raises to reject
       before any payload byte is read. Then the manifest is parsed.
    3. The payload: only files the manifest lists (and their folders) are accepted, each with its
       declared size as a hard limit and hashed while it is read and written; an unlisted,
       duplicate, oversized or special entry is rejected before anything of it is written.
    4. The end: every listed file was present and nothing follows the end-of-archive marker.

    Returns (root folder name, manifest dict). Raises ArchiveRejected (or what check_head raises);
    on failure, whatever was written lies inside dest/<root>/ for the caller to delete."""
    import os

    with open(str(path), "rb") as raw:
        tar = TarReader(raw)
        root, manifest_bytes, signature = read_head(tar)
        if check_head is not None:
            check_head(manifest_bytes, signature)
        manifest = parse_manifest(manifest_bytes, root)
        listed = manifest["files"]
        folders = implied_folders(listed)
        base = None
        if dest is not None:
            base = os.path.join(os.path.realpath(str(dest)), root)
            _check_free_space(
                os.path.dirname(base),
                sum(entry["size"] for entry in listed.values()) + len(manifest_bytes) + len(signature),
            )
            os.mkdir(base)  # fails if it exists: never unpack over something else
            for name, data in ((MANIFEST_NAME, manifest_bytes), (SIGNATURE_NAME, signature)):
                with open(os.path.join(base, name), "xb") as out:
                    out.write(data)
        seen, made = set(), set()
        while True:
            entry = tar.next()
            if entry is None:
                break
            problem = member_problem(entry, root)
            if problem:
                raise ArchiveRejected(problem)
            rel = relative_name(entry.name[:-1] if entry.name.endswith("/") else entry.name)
            if rel == "" and not entry.isdir():
                raise ArchiveRejected(
                    "file at the top of the archive, outside any bundle folder: %s" % entry.name
                )
            if rel in seen or rel in made or rel in SIGNED_NAMES or rel == "":
                raise ArchiveRejected("duplicate entry in archive: %s" % entry.name)
            parts = rel.split("/")
            for depth in range(1, len(parts)):
                if "/".join(parts[:depth]) in seen:
                    raise ArchiveRejected("entry inside a file in archive: %s" % entry.name)
            if entry.isdir():
                if rel not in folders:
                    raise ArchiveRejected("folder not listed in manifest: %s" % rel)
                made.add(rel)
                if base is not None:
                    os.makedirs(os.path.join(base, *parts), exist_ok=True)
                continue
            if rel not in listed:
                raise ArchiveRejected("file not listed in manifest: %s" % rel)
            declared = listed[rel]["size"]
            if entry.size != declared:
                raise ArchiveRejected(
                    "size mismatch for %s: manifest says %d bytes, the archive entry has %d"
                    % (rel, declared, entry.size)
                )
            seen.add(rel)
            if base is None:
                sha, _ = sha256_stream(tar)
            else:
                target = os.path.join(base, *parts)
                if os.path.commonpath([base, os.path.realpath(os.path.dirname(target))]) != base:
                    raise ArchiveRejected("entry would be written outside the bundle folder: %s" % entry.name)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with open(target, "xb") as out:
                    sha, _ = sha256_stream(_Tee(tar, out))
            if sha != listed[rel]["sha256"]:
                raise ArchiveRejected("checksum mismatch for %s" % rel)
        for name in sorted(listed):
            if name not in seen:
                raise ArchiveRejected("file listed in manifest is missing: %s" % name)
    return root, manifest


def _check_free_space(folder, needed):
    import shutil

    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return
    if needed > free:
        raise ArchiveRejected(
            "not enough free space in %s: the bundle needs %d bytes, %d are free" % (folder, needed, free)
        )


class _Tee(object):
    """Reads from a stream and copies what it read into a file."""

    def __init__(self, stream, out):
        self.stream, self.out = stream, out

    def read(self, size):
        block = self.stream.read(size)
        self.out.write(block)
        return block


# ---------------------------------------------------------------------------------------------
# Unpacked folders
# ---------------------------------------------------------------------------------------------
def scan_folder(folder):
    """Hash an unpacked bundle folder: (manifest bytes, signature bytes, {relative path: (sha256,
    size)}). Every file counts, Python's `__pycache__` included (a planted .pyc would run on
    `import loader`); links and special files are rejected because a bundle never has them."""
    import os

    found = {}
    signed = {}
    folder = str(folder)
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        if os.path.relpath(dirpath, folder).count(os.sep) >= MAX_PATH_DEPTH:
            raise ArchiveRejected(
                "folder deeper than %d levels in bundle folder: %s..."
                % (MAX_PATH_DEPTH, os.path.relpath(dirpath, folder)[:60])
            )
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
                    signed[rel] = handle.read(MAX_SIGNED_FILE + 1)
                if len(signed[rel]) > MAX_SIGNED_FILE:
                    raise ArchiveRejected("%s is implausibly large" % rel)
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
    manifest = parse_manifest(manifest_bytes, root)
    problem = manifest_files_problem(manifest, found)
    if problem:
        raise ArchiveRejected(problem)
    return manifest
