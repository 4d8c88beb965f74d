"""Tiny ONNX models built from code, for tests of any part of edgebuild.

Every builder writes a checked model to `path` and returns the path. Weights are seeded random
numbers, so two calls give identical files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


def _init(name: str, array: np.ndarray) -> TensorProto:
    return numpy_helper.from_array(array, name)


def _save(model: onnx.ModelProto, path: Path, check: bool = True) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if check:
        onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _model(graph, opset: int = OPSET, extra_opsets: dict[str, int] | None = None, **kw) -> onnx.ModelProto:
    imports = [helper.make_opsetid("", opset)] + [
        helper.make_opsetid(d, v) for d, v in (extra_opsets or {}).items()
    ]
    ir = 3 if opset <= 8 else 8
    return helper.make_model(graph, opset_imports=imports, ir_version=kw.pop("ir_version", ir), **kw)


def tiny_cnn(
    path: Path,
    channels: int = 8,
    size: int = 16,
    classes: int = 4,
    dynamic_batch: bool = False,
    opset: int = OPSET,
) -> Path:
    """x[N,3,size,size] -> Conv/Relu -> MaxPool -> Conv/Relu -> GlobalAveragePool -> Flatten -> Gemm -> Softmax."""
    rng = np.random.default_rng(0)
    batch = "N" if dynamic_batch else 1
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], "conv1", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], "relu1"),
        helper.make_node("MaxPool", ["r1"], ["p1"], "pool1", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "w2", "b2"], ["c2"], "conv2", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"], "relu2"),
        helper.make_node("GlobalAveragePool", ["r2"], ["g"], "gap"),
        helper.make_node("Flatten", ["g"], ["f"], "flatten"),
        helper.make_node("Gemm", ["f", "wf", "bf"], ["logits"], "fc", transB=1),
        helper.make_node("Softmax", ["logits"], ["y"], "softmax", axis=-1),
    ]
    inits = [
        _init("w1", rng.normal(0, 0.3, (channels, 3, 3, 3)).astype(np.float32)),
        _init("b1", np.zeros(channels, np.float32)),
        _init("w2", rng.normal(0, 0.3, (channels, channels, 3, 3)).astype(np.float32)),
        _init("b2", np.zeros(channels, np.float32)),
        _init("wf", rng.normal(0, 0.3, (classes, channels)).astype(np.float32)),
        _init("bf", np.zeros(classes, np.float32)),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_cnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, size, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, classes])],
        inits,
    )
    return _save(_model(graph, opset), path)


def cnn_with_unsupported_middle(path: Path) -> Path:
    """Conv -> Relu -> Sin (no Edge TPU op) -> Conv -> Relu: the Edge TPU cut falls at Sin."""
    rng = np.random.default_rng(1)
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], "conv1", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], "relu1"),
        helper.make_node("Sin", ["r1"], ["s"], "sin"),
        helper.make_node("Conv", ["s", "w2"], ["c2"], "conv2", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["y"], "relu2"),
    ]
    inits = [
        _init("w1", rng.normal(0, 0.3, (8, 3, 3, 3)).astype(np.float32)),
        _init("w2", rng.normal(0, 0.3, (16, 8, 3, 3)).astype(np.float32)),
    ]
    graph = helper.make_graph(
        nodes,
        "cut",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16, 8, 8])],
        inits,
    )
    return _save(_model(graph), path)


def if_model(path: Path, branch_op: str = "Sin") -> Path:
    """y = If(cond) then Relu(x) else <branch_op>(x): an op hidden in a branch subgraph."""
    then_g = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["t"], "then_relu")],
        "then",
        [],
        [helper.make_tensor_value_info("t", TensorProto.FLOAT, [1, 4])],
    )
    else_g = helper.make_graph(
        [helper.make_node(branch_op, ["x"], ["e"], "else_op")],
        "else",
        [],
        [helper.make_tensor_value_info("e", TensorProto.FLOAT, [1, 4])],
    )
    node = helper.make_node("If", ["cond"], ["y"], "if0", then_branch=then_g, else_branch=else_g)
    graph = helper.make_graph(
        [node],
        "if_model",
        [
            helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    return _save(_model(graph), path)


def loop_model(path: Path) -> Path:
    """A Loop whose body adds x to a running sum, with a nested Cos."""
    body = helper.make_graph(
        [
            helper.make_node("Add", ["acc_in", "x"], ["s"], "body_add"),
            helper.make_node("Cos", ["s"], ["acc_out"], "body_cos"),
            helper.make_node("Identity", ["cond_in"], ["cond_out"], "body_cond"),
        ],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("acc_in", TensorProto.FLOAT, [2]),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("acc_out", TensorProto.FLOAT, [2]),
        ],
    )
    node = helper.make_node("Loop", ["trip", "", "acc0"], ["y"], "loop0", body=body)
    graph = helper.make_graph(
        [node],
        "loop_model",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [2]),
            helper.make_tensor_value_info("acc0", TensorProto.FLOAT, [2]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
        [_init("trip", np.array(3, np.int64))],
    )
    return _save(_model(graph), path)


def mixed_domains_model(path: Path) -> Path:
    """Standard Relu, a com.microsoft FusedMatMul, an ai.onnx.ml Normalizer and a custom-domain op."""
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], "relu"),
        helper.make_node("FusedMatMul", ["r", "w"], ["m"], "fused_mm", domain="com.microsoft", alpha=1.0),
        helper.make_node("Normalizer", ["m"], ["n"], "normalizer", domain="ai.onnx.ml", norm="L2"),
        helper.make_node("MyOp", ["n"], ["y"], "my_op", domain="acme.custom"),
    ]
    graph = helper.make_graph(
        nodes,
        "mixed",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])],
        [_init("w", np.eye(4, dtype=np.float32))],
    )
    model = _model(graph, extra_opsets={"com.microsoft": 1, "ai.onnx.ml": 3, "acme.custom": 1})
    return _save(model, path, check=False)  # the checker rejects unknown domains; the file is still valid


def qdq_model(path: Path, zero_point: int = 0) -> Path:
    """x -> QuantizeLinear -> DequantizeLinear -> Relu, with the given int8 zero point."""
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "zp"], ["q"], "quant"),
        helper.make_node("DequantizeLinear", ["q", "s", "zp"], ["d"], "dequant"),
        helper.make_node("Relu", ["d"], ["y"], "relu"),
    ]
    graph = helper.make_graph(
        nodes,
        "qdq",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])],
        [_init("s", np.array(0.05, np.float32)), _init("zp", np.array(zero_point, np.int8))],
    )
    return _save(_model(graph), path)


def sequence_optional_model(path: Path) -> Path:
    """SequenceConstruct/SequenceAt plus Optional/OptionalHasElement (opset 18)."""
    nodes = [
        helper.make_node("SequenceConstruct", ["x", "x"], ["seq"], "seq_construct"),
        helper.make_node("SequenceAt", ["seq", "idx"], ["a"], "seq_at"),
        helper.make_node("Optional", ["a"], ["opt"], "optional"),
        helper.make_node("OptionalHasElement", ["opt"], ["has"], "has_element"),
    ]
    graph = helper.make_graph(
        nodes,
        "seq_opt",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, [3]),
            helper.make_tensor_value_info("has", TensorProto.BOOL, []),
        ],
        [_init("idx", np.array(1, np.int64))],
    )
    return _save(_model(graph, 18), path)


def local_function_model(path: Path) -> Path:
    """A model-local function `acme.fn::AddRelu` (Add then Relu) called once."""
    fn = helper.make_function(
        "acme.fn",
        "AddRelu",
        ["a", "b"],
        ["c"],
        [helper.make_node("Add", ["a", "b"], ["s"]), helper.make_node("Relu", ["s"], ["c"])],
        [helper.make_opsetid("", OPSET)],
    )
    graph = helper.make_graph(
        [helper.make_node("AddRelu", ["x", "x"], ["y"], "add_relu", domain="acme.fn")],
        "fn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    model = _model(graph, extra_opsets={"acme.fn": 1}, functions=[fn])
    return _save(model, path)


def external_data_model(path: Path, features: int = 512) -> Path:
    """MatMul with a [features, features] weight stored as external data beside the model."""
    rng = np.random.default_rng(2)
    w = _init("w", rng.normal(size=(features, features)).astype(np.float32))
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"], "mm")],
        "ext",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, features])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, features])],
        [w],
    )
    model = _model(graph)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(
        model,
        str(path),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=path.name + ".data",
        size_threshold=0,
    )
    return path


def single_op_model(path: Path, op: str, opset: int, dtype=TensorProto.FLOAT, shape=(2, 3), **attrs) -> Path:
    """One elementwise op on one input, at any opset from 7 up."""
    graph = helper.make_graph(
        [helper.make_node(op, ["x"], ["y"], op.lower(), **attrs)],
        op,
        [helper.make_tensor_value_info("x", dtype, list(shape))],
        [helper.make_tensor_value_info("y", dtype, list(shape))],
    )
    return _save(_model(graph, opset), path)


def outlier_channel_cnn(path: Path, offset: float = 5000.0) -> Path:
    """Two heads over a shared Conv/Relu stem: `score` (a chain of Conv/Relu, pooled, Gemm, Softmax)
    and `mask` (conv2 -> Relu -> 1x1 conv3). conv2's channel 0 carries a constant `offset` that
    conv3 ignores: quantized per tensor, that activation's range is set by channel 0 and its other
    channels fall to a step or two, so int8 breaks `mask` (and only `mask`) unless conv2, its Relu
    and conv3 stay float. 15 quantizable nodes."""
    rng = np.random.default_rng(3)
    c = 8
    w2 = rng.normal(0, 0.3, (c, c, 3, 3))
    b2 = np.zeros(c)
    b2[0] = offset
    w3 = rng.normal(0, 0.3, (2, c, 1, 1))
    w3[:, 0] = 0.0
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], "conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], "relu1"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], "conv2", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"], "relu2"),
        helper.make_node("Conv", ["r2", "w3", "b3"], ["mask"], "conv3"),
    ]
    inits = [
        _init("w1", rng.normal(0, 0.3, (c, 3, 3, 3)).astype(np.float32)),
        _init("b1", np.zeros(c, np.float32)),
        _init("w2", w2.astype(np.float32)),
        _init("b2", b2.astype(np.float32)),
        _init("w3", w3.astype(np.float32)),
        _init("b3", np.zeros(2, np.float32)),
    ]
    prev = "r1"
    for i in range(3):
        nodes += [
            helper.make_node("Conv", [prev, f"wa{i}", f"ba{i}"], [f"ca{i}"], f"conv_a{i}", pads=[1, 1, 1, 1]),
            helper.make_node("Relu", [f"ca{i}"], [f"ra{i}"], f"relu_a{i}"),
        ]
        inits += [
            _init(f"wa{i}", rng.normal(0, 0.3, (c, c, 3, 3)).astype(np.float32)),
            _init(f"ba{i}", np.zeros(c, np.float32)),
        ]
        prev = f"ra{i}"
    nodes += [
        helper.make_node("GlobalAveragePool", [prev], ["g"], "gap"),
        helper.make_node("Flatten", ["g"], ["f"], "flatten"),
        helper.make_node("Gemm", ["f", "wf", "bf"], ["logits"], "fc", transB=1),
        helper.make_node("Softmax", ["logits"], ["score"], "softmax", axis=-1),
    ]
    inits += [
        _init("wf", rng.normal(0, 0.3, (4, c)).astype(np.float32)),
        _init("bf", np.zeros(4, np.float32)),
    ]
    graph = helper.make_graph(
        nodes,
        "outlier_channel_cnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 16, 16])],
        [
            helper.make_tensor_value_info("mask", TensorProto.FLOAT, ["N", 2, 16, 16]),
            helper.make_tensor_value_info("score", TensorProto.FLOAT, ["N", 4]),
        ],
        inits,
    )
    return _save(_model(graph), path)


# --- int8 quantization pitfalls (tests/test_tflite_int8_fallback.py), each seen on a real model


def _opset13_model(nodes, name, x_shape, y_shape, inits, path: Path) -> Path:
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)],
        inits,
    )
    return _save(_model(graph, opset=13), path)


def matmul_3d(path: Path, tokens: int = 8, width: int = 32, out: int = 16) -> Path:
    """x[1,T,W] @ const[W,O]: onnx2tf writes BATCH_MATMUL with constant weights (an FSMN VAD's linears)."""
    w = np.random.default_rng(0).normal(0, 0.3, (width, out)).astype(np.float32)
    return _opset13_model(
        [helper.make_node("MatMul", ["x", "w"], ["y"], "mm")],
        "matmul_3d",
        [1, tokens, width],
        [1, tokens, out],
        [_init("w", w)],
        path,
    )


def quiet_token_layer_norm(path: Path, tokens: int = 16, width: int = 32, depth: int = 6) -> Path:
    """`depth` MatMul/Relu layers (int8 does well on those), a MatMul, then every 4th token scaled
    by 1e-3, then a layer norm written out as a BERT export does (ReduceMean, Sub, Mul, ReduceMean,
    Add eps, Sqrt, Div), then MatMul. The quiet tokens' divisor is ~sqrt(eps): in int8 it rounds
    to the zero point, which LiteRT's DIV refuses."""
    rng = np.random.default_rng(0)
    gain = np.ones((1, tokens, 1), np.float32)
    gain[:, ::4] = 1e-3
    body, inits, x = [], [], "x"
    for k in range(depth):
        body += [
            helper.make_node("MatMul", [x, f"wd{k}"], [f"m{k}"], f"mmd{k}"),
            helper.make_node("Relu", [f"m{k}"], [f"r{k}"], f"relu{k}"),
        ]
        inits.append(_init(f"wd{k}", rng.normal(0, 0.3, (width, width)).astype(np.float32)))
        x = f"r{k}"
    nodes = body + [
        helper.make_node("MatMul", [x, "w1"], ["h0"], "mm1"),
        helper.make_node("Mul", ["h0", "gain"], ["h"], "gain"),
        helper.make_node("ReduceMean", ["h"], ["mu"], "mean", axes=[-1], keepdims=1),
        helper.make_node("Sub", ["h", "mu"], ["d"], "center"),
        helper.make_node("Mul", ["d", "d"], ["d2"], "square"),
        helper.make_node("ReduceMean", ["d2"], ["var"], "var", axes=[-1], keepdims=1),
        helper.make_node("Add", ["var", "eps"], ["ve"], "add_eps"),
        helper.make_node("Sqrt", ["ve"], ["sd"], "sqrt"),
        helper.make_node("Div", ["d", "sd"], ["n"], "normalize"),
        helper.make_node("MatMul", ["n", "w2"], ["y"], "mm2"),
    ]
    inits += [
        _init("w1", rng.normal(0, 0.3, (width, width)).astype(np.float32)),
        _init("w2", rng.normal(0, 0.3, (width, width)).astype(np.float32)),
        _init("gain", gain),
        _init("eps", np.array(1e-6, np.float32)),
    ]
    return _opset13_model(
        nodes, "quiet_token_layer_norm", [1, tokens, width], [1, tokens, width], inits, path
    )


def max_with_scalar(path: Path, width: int = 256) -> Path:
    """max(x - mean(x), c) with c a [1] constant (Magika's layer norm): a constant of lower rank
    than the Max output, which ai-edge-quantizer 0.10.0 cannot quantize as it stands."""
    nodes = [
        helper.make_node("ReduceMean", ["x"], ["mu"], "mean", axes=[-1], keepdims=1),
        helper.make_node("Sub", ["x", "mu"], ["d"], "center"),
        helper.make_node("Max", ["c", "d"], ["y"], "floor"),
    ]
    return _opset13_model(
        nodes, "max_with_scalar", [1, width], [1, width], [_init("c", np.array([0.1], np.float32))], path
    )
