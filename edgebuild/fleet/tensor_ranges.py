"""Where the weights lie inside a model file: named byte ranges, per container format.

A delta between two releases of a model is small only when it is taken tensor by tensor (a
fine-tune changes every weight a little; a head-only retrain leaves most tensors identical), so
the delta builder needs each tensor's bytes and a name that matches it across releases. Only the
build host parses formats; the device applies byte ranges and needs no parser (delta_apply.py).

Each reader returns [(key, offset, length)] sorted by offset, non-overlapping, keys unique. A
file the readers do not understand, or that fails to parse, is one opaque range.
"""

from __future__ import annotations

import struct
from pathlib import Path

MIN_TENSOR_BYTES = 64  # smaller payloads go with the file's skeleton: not worth a segment each

Ranges = list[tuple[str, int, int]]


def tensor_ranges(path: Path, data: bytes) -> tuple[str, Ranges]:
    """(format name, ranges) for a bundle file; ('opaque', [('whole', 0, len)]) when unknown."""
    readers = {
        ".onnx": ("onnx", _onnx_ranges),
        ".tflite": ("tflite", _tflite_ranges),
        ".gguf": ("gguf", _gguf_ranges),
    }
    name = path.name
    fmt, reader = readers.get(path.suffix.lower(), (None, None))
    if reader is None and name == "weight.bin" and "weights" in path.parts:
        fmt, reader = "coreml-weights", _coreml_weight_ranges
    if reader is not None:
        try:
            ranges = _normalised(reader(data), len(data))
            return fmt, ranges
        except (ValueError, IndexError, struct.error, KeyError):
            pass
    return "opaque", [("whole", 0, len(data))]


def _normalised(ranges, size: int) -> Ranges:
    """Sorted, inside the file, non-overlapping, unique keys, big enough to matter."""
    out, seen, end = [], {}, 0
    for key, offset, length in sorted(ranges, key=lambda r: r[1]):
        if length < MIN_TENSOR_BYTES:
            continue
        if offset < end or offset + length > size:
            raise ValueError("overlapping or out-of-file tensor range")
        count = seen.get(key, 0)
        seen[key] = count + 1
        out.append((key if count == 0 else f"{key}#{count}", offset, length))
        end = offset + length
    return out


# --- ONNX: a protobuf walk that records where each TensorProto's data field lies ------------------
# Field numbers from onnx/onnx.proto: ModelProto.graph=7; GraphProto.node=1, initializer=5;
# NodeProto.name=3, attribute=5; AttributeProto.name=1, t=5, g=6, tensors=10, graphs=11;
# TensorProto.name=8 and its data fields float_data=4, int32_data=5, int64_data=7, raw_data=9,
# double_data=10, uint64_data=11 (packed repeated numbers, or bytes).
_TENSOR_DATA_FIELDS = {4, 5, 7, 9, 10, 11}


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _fields(buf: bytes, start: int, end: int):
    """(field number, wire type, value start, value end) of each field of one message."""
    pos = start
    while pos < end:
        tag, pos = _varint(buf, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            _, after = _varint(buf, pos)
        elif wire == 1:
            after = pos + 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            after = pos + length
        elif wire == 5:
            after = pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        if after > end:
            raise ValueError("protobuf field runs past its message")
        yield number, wire, pos, after
        pos = after


def _string_field(buf: bytes, start: int, end: int, number: int) -> str:
    for num, wire, a, b in _fields(buf, start, end):
        if num == number and wire == 2:
            return buf[a:b].decode("utf-8", "replace")
    return ""


def _onnx_ranges(data: bytes) -> Ranges:
    ranges: Ranges = []
    for num, wire, a, b in _fields(data, 0, len(data)):
        if num == 7 and wire == 2:
            _graph(data, a, b, "", ranges)
    return ranges


def _graph(buf: bytes, start: int, end: int, prefix: str, ranges: Ranges) -> None:
    for num, wire, a, b in _fields(buf, start, end):
        if wire != 2:
            continue
        if num == 5:
            _tensor(buf, a, b, prefix, ranges)
        elif num == 1:
            node = _string_field(buf, a, b, 3) or f"node@{a}"
            for anum, awire, aa, ab in _fields(buf, a, b):
                if anum == 5 and awire == 2:
                    _attribute(buf, aa, ab, f"{prefix}{node}/", ranges)


def _attribute(buf: bytes, start: int, end: int, prefix: str, ranges: Ranges) -> None:
    name = _string_field(buf, start, end, 1)
    for index, (num, wire, a, b) in enumerate(_fields(buf, start, end)):
        if wire != 2:
            continue
        if num in (5, 10):
            _tensor(buf, a, b, f"{prefix}{name}[{index}]:", ranges)
        elif num in (6, 11):
            _graph(buf, a, b, f"{prefix}{name}[{index}]/", ranges)


def _tensor(buf: bytes, start: int, end: int, prefix: str, ranges: Ranges) -> None:
    name = _string_field(buf, start, end, 8)
    for num, wire, a, b in _fields(buf, start, end):
        if num in _TENSOR_DATA_FIELDS and wire == 2:
            ranges.append((f"{prefix}{name}.{num}", a, b - a))


# --- TFLite: Model.buffers[i].data (flatbuffer vectors of bytes) --------------------------------
def _table_field(buf: bytes, table: int, index: int) -> int | None:
    """Absolute position of field `index` of the flatbuffer table at `table`, or None if absent."""
    vtable = table - struct.unpack_from("<i", buf, table)[0]
    vt_size = struct.unpack_from("<H", buf, vtable)[0]
    slot = 4 + 2 * index
    if slot >= vt_size:
        return None
    rel = struct.unpack_from("<H", buf, vtable + slot)[0]
    return table + rel if rel else None


def _deref(buf: bytes, pos: int) -> int:
    return pos + struct.unpack_from("<I", buf, pos)[0]


def _tflite_ranges(data: bytes) -> Ranges:
    if data[4:8] != b"TFL3":
        raise ValueError("not a TFLite flatbuffer")
    model = _deref(data, 0)
    field = _table_field(data, model, 4)  # Model.buffers
    if field is None:
        return []
    vector = _deref(data, field)
    count = struct.unpack_from("<I", data, vector)[0]
    ranges: Ranges = []
    for i in range(count):
        buffer = _deref(data, vector + 4 + 4 * i)
        data_field = _table_field(data, buffer, 0)  # Buffer.data
        if data_field is not None:
            vec = _deref(data, data_field)
            length = struct.unpack_from("<I", data, vec)[0]
            ranges.append((f"buffer{i}", vec + 4, length))
            continue
        offset_field, size_field = _table_field(data, buffer, 1), _table_field(data, buffer, 2)
        if offset_field is not None and size_field is not None:  # buffers stored after the flatbuffer
            offset = struct.unpack_from("<Q", data, offset_field)[0]
            size = struct.unpack_from("<Q", data, size_field)[0]
            if offset > 1:
                ranges.append((f"buffer{i}", offset, size))
    return ranges


# --- GGUF: tensor data after the header, at the offsets its tensor infos give ---------------------
def _gguf_ranges(data: bytes) -> Ranges:
    import tempfile

    from gguf import GGUFReader  # the gguf extra; without it the file stays opaque

    with tempfile.NamedTemporaryFile(suffix=".gguf") as tmp:  # GGUFReader maps a file
        tmp.write(data)
        tmp.flush()
        reader = GGUFReader(tmp.name)
        return [(tensor.name, int(tensor.data_offset), int(tensor.n_bytes)) for tensor in reader.tensors]


# --- Core ML weight.bin: blobs behind 64-byte metadata records (sentinel 0xDEADBEEF) -------------
_BLOB_SENTINEL = 0xDEADBEEF


def _coreml_weight_ranges(data: bytes) -> Ranges:
    ranges: Ranges = []
    pos = 64  # file header
    while pos + 64 <= len(data):
        sentinel, _dtype, size, offset = struct.unpack_from("<IIQQ", data, pos)
        if sentinel != _BLOB_SENTINEL:
            raise ValueError("not a Core ML weight blob record")
        ranges.append((f"blob@{pos - 64}", offset, size))
        pos = (offset + size + 63) // 64 * 64
    return ranges
