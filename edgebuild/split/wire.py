"""Intermediate tensors on the wire: a length-prefixed JSON header (name, dtype, shape, encoding,
scale) followed by each tensor's raw little-endian bytes.

Encodings: "raw" (as computed), "fp16" (float tensors sent as float16), "int8" (float tensors
sent as symmetric int8 with one float scale per tensor: x ~ q * scale). Non-float tensors are
always raw. Imports only numpy and the standard library, so a device loader can carry it as is.

Frame: 4-byte big-endian header length, header JSON (utf-8), payload. The reader checks every
size against the header before allocating, since a peer is not trusted.
"""

from __future__ import annotations

import json
import struct

import numpy as np

MAX_HEADER = 1 << 20
MAX_PAYLOAD = 1 << 31
DTYPES = {"float32", "float16", "float64", "int8", "uint8", "int16", "int32", "int64", "bool"}


def encode(tensors: dict, intermediate: str = "fp32") -> bytes:
    """Tensors (name -> array) as one frame."""
    header, chunks = [], []
    for name, value in tensors.items():
        array = np.asarray(value)  # not ascontiguousarray: it turns a 0-d scalar into shape [1]
        entry = {"name": name, "dtype": array.dtype.name, "shape": list(array.shape), "encoding": "raw"}
        if array.dtype.kind == "f" and intermediate == "fp16":
            array, entry["encoding"] = array.astype("<f2"), "fp16"
        elif array.dtype.kind == "f" and intermediate == "int8":
            peak = float(np.max(np.abs(array))) if array.size else 0.0
            scale = peak / 127.0 if peak > 0 else 1.0
            array = np.clip(np.rint(array / scale), -127, 127).astype(np.int8)
            entry["encoding"], entry["scale"] = "int8", scale
        else:
            array = array.astype(array.dtype.newbyteorder("<"), copy=False)
        data = array.tobytes()
        entry["nbytes"] = len(data)
        header.append(entry)
        chunks.append(data)
    head = json.dumps({"tensors": header}).encode()
    return struct.pack(">I", len(head)) + head + b"".join(chunks)


def payload_size(frame_header: dict) -> int:
    return sum(t["nbytes"] for t in frame_header["tensors"])


def parse_header(head: bytes) -> dict:
    """The header, checked: known dtypes and encodings, sizes that match the shapes."""
    doc = json.loads(head.decode())
    if not isinstance(doc, dict) or not isinstance(doc.get("tensors"), list):
        raise ValueError("bad frame header")
    for t in doc["tensors"]:
        if t.get("dtype") not in DTYPES or t.get("encoding") not in ("raw", "fp16", "int8"):
            raise ValueError(
                f"bad tensor entry {t.get('name')!r}: dtype {t.get('dtype')!r}, "
                f"encoding {t.get('encoding')!r}"
            )
        shape = t.get("shape")
        if not (isinstance(shape, list) and all(isinstance(d, int) and d >= 0 for d in shape)):
            raise ValueError(f"bad shape for {t.get('name')!r}")
        item = {"raw": np.dtype(t["dtype"]).itemsize, "fp16": 2, "int8": 1}[t["encoding"]]
        if t.get("nbytes") != int(np.prod(shape, dtype=np.int64)) * item:
            raise ValueError(f"size of {t.get('name')!r} does not match its shape")
        if t["encoding"] == "int8" and not isinstance(t.get("scale"), (int, float)):
            raise ValueError(f"int8 tensor {t.get('name')!r} has no scale")
    if payload_size(doc) > MAX_PAYLOAD:
        raise ValueError("frame too large")
    return doc


def decode_payload(header: dict, payload: bytes) -> dict:
    """name -> array in the dtype the device computed (fp16/int8 converted back)."""
    out, offset = {}, 0
    for t in header["tensors"]:
        chunk = payload[offset : offset + t["nbytes"]]
        offset += t["nbytes"]
        if t["encoding"] == "raw":
            array = np.frombuffer(chunk, dtype=np.dtype(t["dtype"]).newbyteorder("<"))
        elif t["encoding"] == "fp16":
            array = np.frombuffer(chunk, dtype="<f2")
        else:
            array = np.frombuffer(chunk, dtype=np.int8).astype(np.float32) * np.float32(t["scale"])
        out[t["name"]] = array.reshape(t["shape"]).astype(t["dtype"])
    return out


def decode(frame: bytes) -> dict:
    (size,) = struct.unpack(">I", frame[:4])
    if size > MAX_HEADER:
        raise ValueError("frame header too large")
    header = parse_header(frame[4 : 4 + size])
    payload = frame[4 + size :]
    if len(payload) != payload_size(header):
        raise ValueError("frame payload size does not match its header")
    return decode_payload(header, payload)


def _read_exact(sock, count: int) -> bytes:
    parts, left = [], count
    while left:
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            raise ConnectionError("peer closed the connection mid-frame")
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def send_frame(sock, frame: bytes) -> None:
    sock.sendall(frame)


def recv_frame(sock, max_payload: int = MAX_PAYLOAD) -> dict:
    """Read one frame from a socket and decode it; a header announcing more than max_payload bytes
    is refused before any payload is read."""
    (size,) = struct.unpack(">I", _read_exact(sock, 4))
    if size > MAX_HEADER:
        raise ValueError("frame header too large")
    header = parse_header(_read_exact(sock, size))
    if payload_size(header) > max_payload:
        raise ValueError(
            f"frame announces {payload_size(header)} bytes, more than the {max_payload} expected"
        )
    return decode_payload(header, _read_exact(sock, payload_size(header)))
