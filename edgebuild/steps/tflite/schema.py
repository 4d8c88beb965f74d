"""A small reader for .tflite files (the TFLite flatbuffer schema), standard library only.

The Edge TPU rules need operator options (fused activations, dilations, strided-slice masks) that
the TFLite interpreter does not expose, and the inspection step must run without TensorFlow. Only
the tables and fields those checks use are decoded; field numbers and enum values follow
tensorflow/lite/schema/schema.fbs.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TENSOR_TYPES = [
    "float32",
    "float16",
    "int32",
    "uint8",
    "int64",
    "string",
    "bool",
    "int16",
    "complex64",
    "int8",
    "float64",
    "complex128",
    "uint64",
    "resource",
    "variant",
    "uint32",
    "uint16",
    "int4",
    "bfloat16",
]

# BuiltinOperator enum, in schema order (value = index).
BUILTIN_OPS = """ADD AVERAGE_POOL_2D CONCATENATION CONV_2D DEPTHWISE_CONV_2D DEPTH_TO_SPACE DEQUANTIZE
EMBEDDING_LOOKUP FLOOR FULLY_CONNECTED HASHTABLE_LOOKUP L2_NORMALIZATION L2_POOL_2D
LOCAL_RESPONSE_NORMALIZATION LOGISTIC LSH_PROJECTION LSTM MAX_POOL_2D MUL RELU RELU_N1_TO_1 RELU6
RESHAPE RESIZE_BILINEAR RNN SOFTMAX SPACE_TO_DEPTH SVDF TANH CONCAT_EMBEDDINGS SKIP_GRAM CALL CUSTOM
EMBEDDING_LOOKUP_SPARSE PAD UNIDIRECTIONAL_SEQUENCE_RNN GATHER BATCH_TO_SPACE_ND SPACE_TO_BATCH_ND
TRANSPOSE MEAN SUB DIV SQUEEZE UNIDIRECTIONAL_SEQUENCE_LSTM STRIDED_SLICE BIDIRECTIONAL_SEQUENCE_RNN
EXP TOPK_V2 SPLIT LOG_SOFTMAX DELEGATE BIDIRECTIONAL_SEQUENCE_LSTM CAST PRELU MAXIMUM ARG_MAX MINIMUM
LESS NEG PADV2 GREATER GREATER_EQUAL LESS_EQUAL SELECT SLICE SIN TRANSPOSE_CONV SPARSE_TO_DENSE TILE
EXPAND_DIMS EQUAL NOT_EQUAL LOG SUM SQRT RSQRT SHAPE POW ARG_MIN FAKE_QUANT REDUCE_PROD REDUCE_MAX
PACK LOGICAL_OR ONE_HOT LOGICAL_AND LOGICAL_NOT UNPACK REDUCE_MIN FLOOR_DIV REDUCE_ANY SQUARE
ZEROS_LIKE FILL FLOOR_MOD RANGE RESIZE_NEAREST_NEIGHBOR LEAKY_RELU SQUARED_DIFFERENCE MIRROR_PAD ABS
SPLIT_V UNIQUE CEIL REVERSE_V2 ADD_N GATHER_ND COS WHERE RANK ELU REVERSE_SEQUENCE MATRIX_DIAG
QUANTIZE MATRIX_SET_DIAG ROUND HARD_SWISH IF WHILE NON_MAX_SUPPRESSION_V4 NON_MAX_SUPPRESSION_V5
SCATTER_ND SELECT_V2 DENSIFY SEGMENT_SUM BATCH_MATMUL PLACEHOLDER_FOR_GREATER_OP_CODES CUMSUM
CALL_ONCE BROADCAST_TO RFFT2D CONV_3D IMAG REAL COMPLEX_ABS HASHTABLE HASHTABLE_FIND HASHTABLE_IMPORT
HASHTABLE_SIZE REDUCE_ALL CONV_3D_TRANSPOSE VAR_HANDLE READ_VARIABLE ASSIGN_VARIABLE BROADCAST_ARGS
RANDOM_STANDARD_NORMAL BUCKETIZE RANDOM_UNIFORM MULTINOMIAL GELU DYNAMIC_UPDATE_SLICE RELU_0_TO_1
UNSORTED_SEGMENT_PROD UNSORTED_SEGMENT_MAX UNSORTED_SEGMENT_SUM ATAN2 UNSORTED_SEGMENT_MIN SIGN
BITCAST BITWISE_XOR RIGHT_SHIFT STABLEHLO_LOGISTIC STABLEHLO_ADD STABLEHLO_DIVIDE STABLEHLO_MULTIPLY
STABLEHLO_MAXIMUM STABLEHLO_RESHAPE STABLEHLO_CLAMP STABLEHLO_CONCATENATE STABLEHLO_BROADCAST_IN_DIM
STABLEHLO_CONVOLUTION STABLEHLO_SLICE STABLEHLO_CUSTOM_CALL STABLEHLO_REDUCE STABLEHLO_ABS
STABLEHLO_AND STABLEHLO_COSINE STABLEHLO_EXPONENTIAL STABLEHLO_FLOOR STABLEHLO_LOG STABLEHLO_MINIMUM
STABLEHLO_NEGATE STABLEHLO_OR STABLEHLO_POWER STABLEHLO_REMAINDER STABLEHLO_RSQRT STABLEHLO_SELECT
STABLEHLO_SUBTRACT STABLEHLO_TANH STABLEHLO_SCATTER STABLEHLO_COMPARE STABLEHLO_CONVERT
STABLEHLO_DYNAMIC_SLICE STABLEHLO_DYNAMIC_UPDATE_SLICE STABLEHLO_PAD STABLEHLO_IOTA
STABLEHLO_DOT_GENERAL STABLEHLO_REDUCE_WINDOW STABLEHLO_SORT STABLEHLO_WHILE STABLEHLO_GATHER
STABLEHLO_TRANSPOSE DILATE STABLEHLO_RNG_BIT_GENERATOR REDUCE_WINDOW""".split()

ACTIVATIONS = ["NONE", "RELU", "RELU_N1_TO_1", "RELU6", "TANH", "SIGN_BIT"]

# Operator options the Edge TPU rules read: op -> {option name: (field number, struct format)}.
# Names follow schema.fbs; a format of "[i" reads a vector of int32.
_OPTION_FIELDS = {
    "CONV_2D": {
        "stride_w": (1, "<i"),
        "stride_h": (2, "<i"),
        "fused_activation_function": (3, "<b"),
        "dilation_w_factor": (4, "<i"),
        "dilation_h_factor": (5, "<i"),
    },
    "DEPTHWISE_CONV_2D": {
        "stride_w": (1, "<i"),
        "stride_h": (2, "<i"),
        "depth_multiplier": (3, "<i"),
        "fused_activation_function": (4, "<b"),
        "dilation_w_factor": (5, "<i"),
        "dilation_h_factor": (6, "<i"),
    },
    "AVERAGE_POOL_2D": {
        "filter_width": (3, "<i"),
        "filter_height": (4, "<i"),
        "fused_activation_function": (5, "<b"),
    },
    "MAX_POOL_2D": {
        "filter_width": (3, "<i"),
        "filter_height": (4, "<i"),
        "fused_activation_function": (5, "<b"),
    },
    "CONCATENATION": {"axis": (0, "<i"), "fused_activation_function": (1, "<b")},
    "FULLY_CONNECTED": {
        "fused_activation_function": (0, "<b"),
        "weights_format": (1, "<b"),
        "keep_num_dims": (2, "<B"),
    },
    "STRIDED_SLICE": {
        "begin_mask": (0, "<i"),
        "end_mask": (1, "<i"),
        "ellipsis_mask": (2, "<i"),
        "new_axis_mask": (3, "<i"),
        "shrink_axis_mask": (4, "<i"),
    },
    "ADD": {"fused_activation_function": (0, "<b")},
    "SUB": {"fused_activation_function": (0, "<b")},
    "MUL": {"fused_activation_function": (0, "<b")},
    "MEAN": {"keep_dims": (0, "<B")},
    "SUM": {"keep_dims": (0, "<B")},
    "REDUCE_MAX": {"keep_dims": (0, "<B")},
    "REDUCE_MIN": {"keep_dims": (0, "<B")},
    "PACK": {"values_count": (0, "<i"), "axis": (1, "<i")},
    "SQUEEZE": {"squeeze_dims": (0, "[i")},
}
_DEFAULT_ONE = ("stride_w", "stride_h", "dilation_w_factor", "dilation_h_factor")
WEIGHTS_FORMATS = ["DEFAULT", "SHUFFLED4x16INT8"]


class NotATfliteFile(ValueError):
    pass


@dataclass
class Tensor:
    index: int
    name: str
    dtype: str
    shape: list[int]
    shape_signature: list[int]  # -1 marks a dynamic dimension; equals shape when static
    buffer: int
    constant: bool  # has data in the file (weights, biases, constant operands)
    scale: list[float] = field(default_factory=list)
    zero_point: list[int] = field(default_factory=list)
    quantized_dimension: int = 0
    data: bytes = b""


@dataclass
class Operator:
    index: int
    op: str  # builtin name, or "CUSTOM:<code>"
    version: int
    inputs: list[int]  # tensor indices; -1 = optional input left out
    outputs: list[int]
    options: dict[str, Any]


@dataclass
class Subgraph:
    name: str
    tensors: list[Tensor]
    operators: list[Operator]
    inputs: list[int]
    outputs: list[int]


@dataclass
class Signature:
    key: str
    inputs: dict[str, int]  # signature name -> tensor index in subgraph `subgraph`
    outputs: dict[str, int]
    subgraph: int = 0


@dataclass
class TfliteModel:
    version: int
    subgraphs: list[Subgraph]
    description: str
    signatures: list[Signature] = field(default_factory=list)

    @property
    def main(self) -> Subgraph:
        return self.subgraphs[0]


class _Table:
    """One flatbuffer table: fields are looked up through its vtable."""

    def __init__(self, buf: bytes, pos: int):
        self.buf, self.pos = buf, pos
        self.vtable = pos - struct.unpack_from("<i", buf, pos)[0]
        self.vsize = struct.unpack_from("<H", buf, self.vtable)[0]

    def _field(self, n: int) -> int:
        off = 4 + 2 * n
        if off >= self.vsize:
            return 0
        rel = struct.unpack_from("<H", self.buf, self.vtable + off)[0]
        return self.pos + rel if rel else 0

    def scalar(self, n: int, fmt: str, default=0):
        p = self._field(n)
        return struct.unpack_from(fmt, self.buf, p)[0] if p else default

    def _deref(self, n: int) -> int:
        p = self._field(n)
        return p + struct.unpack_from("<I", self.buf, p)[0] if p else 0

    def table(self, n: int) -> "_Table | None":
        p = self._deref(n)
        return _Table(self.buf, p) if p else None

    def string(self, n: int) -> str:
        p = self._deref(n)
        if not p:
            return ""
        length = struct.unpack_from("<I", self.buf, p)[0]
        return self.buf[p + 4 : p + 4 + length].decode("utf-8", "replace")

    def vector(self, n: int, fmt: str) -> list:
        p = self._deref(n)
        if not p:
            return []
        length = struct.unpack_from("<I", self.buf, p)[0]
        return list(struct.unpack_from(f"<{length}{fmt}", self.buf, p + 4))

    def bytes_vector(self, n: int) -> bytes:
        p = self._deref(n)
        if not p:
            return b""
        length = struct.unpack_from("<I", self.buf, p)[0]
        return self.buf[p + 4 : p + 4 + length]

    def tables(self, n: int) -> list["_Table"]:
        p = self._deref(n)
        if not p:
            return []
        length = struct.unpack_from("<I", self.buf, p)[0]
        out = []
        for i in range(length):
            elem = p + 4 + 4 * i
            out.append(_Table(self.buf, elem + struct.unpack_from("<I", self.buf, elem)[0]))
        return out


def read_model(path: str | Path) -> TfliteModel:
    return parse_model(Path(path).read_bytes())


def parse_model(buf: bytes) -> TfliteModel:
    if len(buf) < 8 or buf[4:8] != b"TFL3":
        raise NotATfliteFile("not a TFLite flatbuffer (file identifier 'TFL3' missing)")
    root = _Table(buf, struct.unpack_from("<I", buf, 0)[0])
    op_codes = []
    for code in root.tables(1):
        # builtin_code (field 3, int32) superseded deprecated_builtin_code (field 0, int8) past 127
        builtin = max(code.scalar(0, "<b"), code.scalar(3, "<i"))
        name = BUILTIN_OPS[builtin] if builtin < len(BUILTIN_OPS) else f"BUILTIN_{builtin}"
        if name == "CUSTOM":
            name = f"CUSTOM:{code.string(1)}"
        op_codes.append((name, code.scalar(2, "<i", 1)))
    buffers = [_buffer_data(buf, b) for b in root.tables(4)]
    subgraphs = [_read_subgraph(sg, op_codes, buffers) for sg in root.tables(2)]
    signatures = [
        Signature(
            sig.string(2),
            {m.string(0): m.scalar(1, "<I") for m in sig.tables(0)},
            {m.string(0): m.scalar(1, "<I") for m in sig.tables(1)},
            sig.scalar(4, "<I"),
        )
        for sig in root.tables(7)
    ]
    return TfliteModel(root.scalar(0, "<I"), subgraphs, root.string(3), signatures)


def _buffer_data(buf: bytes, b: _Table) -> bytes:
    """A buffer's bytes: inline (field 0), or, in files written by ai-edge-quantizer and other
    large-model writers, appended after the flatbuffer at `offset` (field 1) with `size` (field 2)."""
    data = b.bytes_vector(0)
    offset, size = b.scalar(1, "<Q"), b.scalar(2, "<Q")
    if not data and offset > 1 and size:
        data = buf[offset : offset + size]
    return data


def _read_subgraph(sg: _Table, op_codes, buffers) -> Subgraph:
    tensors = []
    for i, t in enumerate(sg.tables(0)):
        shape = t.vector(0, "i")
        signature = t.vector(7, "i") or list(shape)
        buf_index = t.scalar(2, "<I")
        data = buffers[buf_index] if 0 < buf_index < len(buffers) else b""
        tensor = Tensor(
            i,
            t.string(3),
            TENSOR_TYPES[t.scalar(1, "<b")]
            if t.scalar(1, "<b") < len(TENSOR_TYPES)
            else f"type{t.scalar(1, '<b')}",
            shape,
            signature,
            buf_index,
            bool(data),
            data=data,
        )
        q = t.table(4)
        if q is not None:
            tensor.scale = q.vector(2, "f")
            tensor.zero_point = q.vector(3, "q")
            tensor.quantized_dimension = q.scalar(6, "<i")
        tensors.append(tensor)
    operators = []
    for i, o in enumerate(sg.tables(3)):
        name, version = op_codes[o.scalar(0, "<I")]
        options = {}
        opt = o.table(4)
        if opt is not None:
            for key, (n, fmt) in _OPTION_FIELDS.get(name, {}).items():
                options[key] = (
                    opt.vector(n, fmt[1:])
                    if fmt.startswith("[")
                    else opt.scalar(n, fmt, 1 if key in _DEFAULT_ONE else 0)
                )
        elif name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            options = {key: 1 for key in _DEFAULT_ONE}
        if "fused_activation_function" in options:
            a = options["fused_activation_function"]
            options["fused_activation_function"] = ACTIVATIONS[a] if 0 <= a < len(ACTIVATIONS) else str(a)
        if "weights_format" in options:
            w = options["weights_format"]
            options["weights_format"] = WEIGHTS_FORMATS[w] if 0 <= w < len(WEIGHTS_FORMATS) else str(w)
        operators.append(Operator(i, name, version, o.vector(1, "i"), o.vector(2, "i"), options))
    return Subgraph(sg.string(4), tensors, operators, sg.vector(1, "i"), sg.vector(2, "i"))
