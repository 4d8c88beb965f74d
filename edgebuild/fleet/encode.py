"""Encoding one file of a new bundle as segments against the same file of the old one.

Per tensor (see tensor_ranges.py) the smallest of: unchanged (copy), XOR against the old tensor
then compressed, bsdiff4 on the raw bytes, zstd with the old bytes as prefix (patch-from), or the
new bytes compressed. The bytes between tensors (graph structure, headers) travel compressed as
they are. Facts behind the choice (issue 18): byte diffs of float weights after a full fine-tune
save little, XOR+zstd somewhat more, and unchanged tensors cost nothing.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

from edgebuild.fleet.tensor_ranges import tensor_ranges

ALL_CODECS = ("zstd", "zlib", "bsdiff4")
BSDIFF_MAX_BYTES = 16 << 20  # bsdiff's suffix sort is slow and memory-hungry beyond this
ZSTD_LEVEL = 19


def parse_codecs(text: str) -> tuple[str, ...]:
    """--codecs zstd,zlib,bsdiff4 -> a tuple; a ConfigError names an unknown codec."""
    from edgebuild.errors import ConfigError

    codecs = tuple(c.strip() for c in text.split(",") if c.strip())
    unknown = [c for c in codecs if c not in ALL_CODECS]
    if unknown or not codecs:
        raise ConfigError(
            f"--codecs: unknown codec {', '.join(unknown) or '(none)'}; choose from {', '.join(ALL_CODECS)}"
        )
    return codecs


@dataclass
class EncodedFile:
    segments: list = field(default_factory=list)
    patch: bytearray = field(default_factory=bytearray)
    tensors: dict = field(default_factory=lambda: {"same": 0, "changed": 0, "new": 0})
    fmt: str = "opaque"

    def add_patch(self, data: bytes) -> tuple[int, int]:
        offset = len(self.patch)
        self.patch += data
        return offset, len(data)


def _compressors(codecs):
    out = {}
    if "zstd" in codecs:
        import pyzstd

        out["zstd"] = lambda data: pyzstd.compress(data, ZSTD_LEVEL)
    if "zlib" in codecs:
        out["zlib"] = lambda data: zlib.compress(data, 9)
    out["none"] = lambda data: data
    return out


def _xor(a: bytes, b: bytes) -> bytes:
    import numpy as np

    return (np.frombuffer(a, np.uint8) ^ np.frombuffer(b, np.uint8)).tobytes()


def _zstd_prefix(old: bytes, new: bytes) -> bytes:
    import pyzstd

    window = min(31, max(10, (len(old) + len(new)).bit_length()))
    option = {
        pyzstd.CParameter.compressionLevel: ZSTD_LEVEL,
        pyzstd.CParameter.windowLog: window,
        pyzstd.CParameter.enableLongDistanceMatching: 1,
    }
    return pyzstd.compress(new, level_or_option=option, zstd_dict=pyzstd.ZstdDict(old, is_raw=True).as_prefix)


def _shuffled(data: bytes, width: int) -> bytes:
    """Byte planes: every value's first byte, then every second byte... (delta_apply._unshuffle)."""
    import numpy as np

    return np.frombuffer(data, np.uint8).reshape(-1, width).T.tobytes()


def _best_data(data: bytes, compressors) -> tuple[str, bytes, int]:
    """(codec, compressed bytes, byte-plane width) of the smallest encoding of `data`."""
    options = []
    for width in (1, 2, 4):
        if width > 1 and (len(data) % width or len(data) < 64 * width):
            continue
        planes = _shuffled(data, width) if width > 1 else data
        options += [(codec, fn(planes), width) for codec, fn in compressors.items()]
    return min(options, key=lambda c: (len(c[1]), c[0] != "none", c[2]))


def _with_width(segment: list, width: int) -> list:
    return segment + [width] if width > 1 else segment


def _encode_range(
    out: EncodedFile, new: bytes, old: bytes | None, old_offset: int, compressors, codecs
) -> None:
    """Append the segment producing `new`, given the old bytes it replaces (or None)."""
    if old is not None and old == new:
        out.segments.append(["copy", old_offset, len(new)])
        return
    candidates = []  # (patch bytes, segment builder)
    codec, data, width = _best_data(new, compressors)
    candidates.append(
        (data, lambda off, ln, c=codec, w=width: _with_width(["data", c, off, ln, len(new)], w))
    )
    if old is not None:
        if len(old) == len(new):
            xcodec, xdata, xwidth = _best_data(_xor(old, new), compressors)
            candidates.append(
                (
                    xdata,
                    lambda off, ln, c=xcodec, w=xwidth: _with_width(
                        ["xor", c, off, ln, old_offset, len(new)], w
                    ),
                )
            )
        if "bsdiff4" in codecs and max(len(old), len(new)) <= BSDIFF_MAX_BYTES:
            import bsdiff4

            candidates.append(
                (bsdiff4.diff(old, new), lambda off, ln: ["bsdiff", off, ln, old_offset, len(old), len(new)])
            )
        if "zstd" in codecs:
            candidates.append(
                (
                    _zstd_prefix(old, new),
                    lambda off, ln: ["zstd-prefix", off, ln, old_offset, len(old), len(new)],
                )
            )
    data, build = min(candidates, key=lambda c: len(c[0]))
    offset, length = out.add_patch(data)
    out.segments.append(build(offset, length))


def encode_file(name: str, new: bytes, old: bytes | None, codecs=ALL_CODECS) -> EncodedFile:
    """Segments that turn `old` (the same file in the old bundle, or None) into `new`."""
    from pathlib import PurePosixPath

    compressors = _compressors(codecs)
    out = EncodedFile()
    if old is not None and old == new:
        out.segments.append(["copy", 0, len(new)])
        out.tensors["same"] += 1
        return out
    path = PurePosixPath(name)
    out.fmt, new_ranges = tensor_ranges(path, new)
    old_ranges = {}
    if old is not None:
        old_fmt, ranges = tensor_ranges(path, old)
        if old_fmt == out.fmt:
            old_ranges = {key: (offset, length) for key, offset, length in ranges}
    pos = 0
    for key, offset, length in new_ranges:
        if offset > pos:  # bytes between tensors (headers, graph structure): sent compressed
            _encode_range(out, new[pos:offset], None, 0, compressors, codecs)
        old_range = old_ranges.get(key)
        old_bytes = old[old_range[0] : old_range[0] + old_range[1]] if old_range else None
        tensor = new[offset : offset + length]
        out.tensors["new" if old_bytes is None else "same" if old_bytes == tensor else "changed"] += 1
        _encode_range(out, tensor, old_bytes, old_range[0] if old_range else 0, compressors, codecs)
        pos = offset + length
    if pos < len(new):
        _encode_range(out, new[pos:], None, 0, compressors, codecs)
    return out
