# Rebuilding a bundle's files from the active version and a delta: the device half of
# `edgebuild delta`.
#
# Pasted verbatim into every generated loader.py (like portable.py), so it must stay importable
# on Python 3.7 with the standard library alone. pyzstd and bsdiff4 are needed only by the
# segments that use them, and a missing one is named in the error (the full bundle always works).
#
# A delta names, for every file of the new bundle, the file of the active version it is built
# from and a list of segments, each producing the next bytes of the new file:
#   ["copy", base_offset, length]                      bytes of the base file, unchanged
#   ["data", codec, patch_offset, patch_length, out_length(, width)]
#                                                      new bytes, compressed with codec
#   ["xor", codec, patch_offset, patch_length, base_offset, length(, width)]
#                                                      base bytes XOR the decompressed patch
# With a width (2 or 4: the bytes of an fp16 or fp32 value), the decompressed bytes are stored
# byte-plane by byte-plane (all first bytes, then all second bytes, ...): the sign and exponent
# bytes of a fine-tuned weight barely change, so their plane compresses to almost nothing.
#   ["bsdiff", patch_offset, patch_length, base_offset, base_length, out_length]
#   ["zstd-prefix", patch_offset, patch_length, base_offset, base_length, out_length]
#                                                      zstd with the base bytes as prefix
# Codecs: "none", "zlib", "zstd". Patch bytes come from the file's patch file in the delta.
# Nothing here is trusted because it parsed: the caller checks every rebuilt file's sha256 and
# size against the new, signed manifest, and the delta itself was signature-checked first.
import hashlib
import zlib

DELTA_KIND = "delta"
MAX_SEGMENT = 1 << 31  # bytes one segment may produce (a bound, not a format limit)
COPY_CHUNK = 1 << 22


class DeltaRejected(Exception):
    """The delta cannot be applied here; the message says why in one line."""


def _need(module, segment):
    try:
        return __import__(module)
    except ImportError:
        raise DeltaRejected(
            "this delta's %s segments need the %s package (pip install %s), "
            "or install the full bundle instead" % (segment, module, module)
        ) from None


def _decompress(codec, data, out_length):
    if codec == "none":
        result = data
    elif codec == "zlib":
        inflater = zlib.decompressobj()
        result = inflater.decompress(data, out_length + 1)
    elif codec == "zstd":
        pyzstd = _need("pyzstd", "zstd")
        result = pyzstd.decompress(data)
    else:
        raise DeltaRejected("unknown codec in delta: %r" % (codec,))
    if len(result) != out_length:
        raise DeltaRejected("a delta segment decodes to %d bytes, %d declared" % (len(result), out_length))
    return result


def _xor(a, b):
    # big integers XOR in linear time: no numpy needed on the device
    return (int.from_bytes(a, "little") ^ int.from_bytes(b, "little")).to_bytes(len(a), "little")


def _unshuffle(data, width):
    """Byte planes back to interleaved values (the inverse of storing plane by plane)."""
    if width == 1:
        return data
    if width not in (2, 4, 8) or len(data) % width:
        raise DeltaRejected("bad byte-plane width %r for %d bytes" % (width, len(data)))
    count = len(data) // width
    out = bytearray(len(data))
    for plane in range(width):
        out[plane::width] = data[plane * count : (plane + 1) * count]
    return bytes(out)


def _check_ints(values, what):
    for value in values:
        if not isinstance(value, int) or isinstance(value, bool) or value < 0 or value > MAX_SEGMENT:
            raise DeltaRejected("bad number in %s segment: %r" % (what, value))


def _read(handle, offset, length, what):
    handle.seek(offset)
    data = handle.read(length)
    if len(data) != length:
        raise DeltaRejected("%s: range %d+%d lies outside the file" % (what, offset, length))
    return data


def apply_segments(segments, base, patch, out):
    """Write the new file's bytes to `out` (a binary file) from `base` and `patch` (seekable
    binary files or None). Returns (sha256 hex, size) of what was written."""
    digest = hashlib.sha256()
    size = 0
    for segment in segments:
        if not isinstance(segment, list) or not segment:
            raise DeltaRejected("malformed delta segment: %r" % (segment,))
        op = segment[0]
        if op == "copy" and len(segment) == 3:
            _check_ints(segment[1:], op)
            # in chunks: an unchanged multi-GB model is copied without holding it in memory
            for offset in range(segment[1], segment[1] + segment[2], COPY_CHUNK):
                length = min(COPY_CHUNK, segment[1] + segment[2] - offset)
                data = _read(_needed(base, op), offset, length, "base file")
                digest.update(data)
                out.write(data)
            size += segment[2]
            continue
        elif op == "data" and len(segment) in (5, 6):
            _check_ints(segment[2:], op)
            raw = _read(_needed(patch, op), segment[2], segment[3], "patch")
            data = _unshuffle(
                _decompress(segment[1], raw, segment[4]), segment[5] if len(segment) == 6 else 1
            )
        elif op == "xor" and len(segment) in (6, 7):
            _check_ints(segment[2:], op)
            raw = _read(_needed(patch, op), segment[2], segment[3], "patch")
            data = _xor(
                _read(_needed(base, op), segment[4], segment[5], "base file"),
                _unshuffle(_decompress(segment[1], raw, segment[5]), segment[6] if len(segment) == 7 else 1),
            )
        elif op in ("bsdiff", "zstd-prefix") and len(segment) == 6:
            _check_ints(segment[1:], op)
            raw = _read(_needed(patch, op), segment[1], segment[2], "patch")
            old = _read(_needed(base, op), segment[3], segment[4], "base file")
            data = _bsdiff(old, raw) if op == "bsdiff" else _zstd_prefix(old, raw)
            if len(data) != segment[5]:
                raise DeltaRejected("a %s segment gives %d bytes, %d declared" % (op, len(data), segment[5]))
        else:
            raise DeltaRejected("unknown or malformed delta segment: %r" % (segment[:1],))
        digest.update(data)
        size += len(data)
        out.write(data)
    return digest.hexdigest(), size


def _needed(handle, op):
    if handle is None:
        raise DeltaRejected("a %s segment needs a file the delta does not provide" % op)
    return handle


def _bsdiff(old, patch):
    bsdiff4 = _need("bsdiff4", "bsdiff")
    try:
        return bsdiff4.patch(old, patch)
    except Exception as exc:  # bsdiff4 raises plain ValueError/RuntimeError on a bad patch
        raise DeltaRejected("bsdiff patch does not apply: %s" % exc) from None


def _zstd_prefix(old, patch):
    pyzstd = _need("pyzstd", "zstd-prefix")
    window = max(10, (2 * len(old) + 1).bit_length())
    try:
        return pyzstd.decompress(
            patch,
            zstd_dict=pyzstd.ZstdDict(old, is_raw=True).as_prefix,
            option={pyzstd.DParameter.windowLogMax: min(window, 31)},
        )
    except pyzstd.ZstdError as exc:
        raise DeltaRejected("zstd patch does not apply: %s" % exc) from None


def delta_problem(delta):
    """Why the `delta` table of a delta manifest cannot be followed, or None."""
    if not isinstance(delta, dict):
        return "delta manifest has no 'delta' table"
    for side in ("base", "target"):
        entry = delta.get(side)
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("version"), str)
            and isinstance(entry.get("manifest_sha256"), str)
        ):
            return "delta manifest lacks its %s version and manifest hash" % side
    files = delta.get("files")
    if not isinstance(files, dict) or not files:
        return "delta manifest lists no files"
    for name, spec in files.items():
        if not (
            isinstance(spec, dict)
            and isinstance(spec.get("segments"), list)
            and isinstance(spec.get("sha256"), str)
            and isinstance(spec.get("size"), int)
        ):
            return "delta entry for %s needs segments, sha256 and size" % name
    return None


def rebuild_bundle(delta_manifest, delta_folder, active_folder, out_folder, path_problem):
    """Write the new bundle's folder `out_folder` (which must not exist) from the unpacked, verified
    delta and the active version's folder. path_problem(name) says why a name is unsafe, or None.
    The caller then verifies out_folder exactly as an unpacked full bundle (signature, checksums)."""
    import os

    delta = delta_manifest.get("delta")
    problem = delta_problem(delta)
    if problem:
        raise DeltaRejected(problem)
    with open(os.path.join(active_folder, "manifest.json"), "rb") as handle:
        active_manifest = handle.read()
    base = delta["base"]
    if hashlib.sha256(active_manifest).hexdigest() != base["manifest_sha256"]:
        import json

        try:
            active_version = json.loads(active_manifest.decode("utf-8")).get("version")
        except ValueError:
            active_version = "unreadable"
        raise DeltaRejected(
            "this delta updates %s from version %s (manifest %s...), but the active version "
            "is %s (manifest %s...): install the full bundle or the delta for that version"
            % (
                delta_manifest.get("target"),
                base["version"],
                base["manifest_sha256"][:12],
                active_version,
                hashlib.sha256(active_manifest).hexdigest()[:12],
            )
        )
    os.mkdir(out_folder)
    for signed, inner in (("manifest.json", "target/manifest.json"), ("manifest.sig", "target/manifest.sig")):
        with open(os.path.join(delta_folder, *inner.split("/")), "rb") as handle:
            data = handle.read()
        if (
            signed == "manifest.json"
            and hashlib.sha256(data).hexdigest() != delta["target"]["manifest_sha256"]
        ):
            raise DeltaRejected("the new manifest in the delta does not match the hash the delta names")
        with open(os.path.join(out_folder, signed), "xb") as out:
            out.write(data)
    for name in sorted(delta["files"]):
        spec = delta["files"][name]
        for label, value in (("file", name), ("base file", spec.get("from")), ("patch", spec.get("patch"))):
            if value is not None and (not isinstance(value, str) or path_problem(value)):
                raise DeltaRejected("unsafe %s name in delta: %r" % (label, value))
        target = os.path.join(out_folder, *name.split("/"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        base_handle = patch_handle = None
        try:
            if spec.get("from") is not None:
                base_handle = open(os.path.join(active_folder, *spec["from"].split("/")), "rb")
            if spec.get("patch") is not None:
                patch_handle = open(os.path.join(delta_folder, *spec["patch"].split("/")), "rb")
            with open(target, "xb") as out:
                sha, size = apply_segments(spec["segments"], base_handle, patch_handle, out)
        except (OSError, IOError) as exc:
            raise DeltaRejected("cannot rebuild %s: %s" % (name, exc)) from None
        finally:
            for handle in (base_handle, patch_handle):
                if handle is not None:
                    handle.close()
        if (sha, size) != (spec["sha256"], spec["size"]):
            raise DeltaRejected("rebuilt %s does not match the delta's checksum" % name)
