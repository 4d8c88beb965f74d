"""Preparation every real ONNX model needs before a TFLite converter sees it.

- Static input shapes: `input_shapes` fill the dynamic dims. A dim is dynamic when it has a
  `dim_param`, no value, or a value <= 0 (Paddle exports write `dim_value: -1`).
- Constant folding and shape propagation with onnxsim, the input shapes overwritten, so shape
  subgraphs (Shape -> Gather -> Concat -> Reshape) become constants the converter can read.
- Node names the converters accept: Paddle writes names like `Softmax@0`, which TensorFlow refuses
  as scope names; names are rewritten to letters, digits, `_`, `.`, `-` and `/` and made unique.
  Tensor names are left alone: the model's input and output names are its interface.

Runs in the `litert` toolchain environment (onnx and onnxsim imported inside the functions).
"""

from __future__ import annotations

import re
from pathlib import Path

_BAD_NAME_CHARS = re.compile(r"[^A-Za-z0-9_./-]")


class PrepareError(ValueError):
    """The model's inputs cannot be made static (the message names the input)."""


def dims(value_info) -> list[int]:
    """The declared dims, dynamic ones as -1."""
    out = []
    for d in value_info.type.tensor_type.shape.dim:
        out.append(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else -1)
    return out


def graph_inputs(model) -> list:
    initializers = {i.name for i in model.graph.initializer}
    return [vi for vi in model.graph.input if vi.name not in initializers]


def static_input_shapes(model, overrides: dict[str, list]) -> dict[str, list[int]]:
    """Every real input's static shape: the override where given, else the declared dims."""
    inputs = graph_inputs(model)
    names = [vi.name for vi in inputs]
    unknown = sorted(set(overrides) - set(names))
    if unknown:
        raise PrepareError(
            f"input_shapes names '{unknown[0]}', which is not an input of the model "
            f"(inputs: {', '.join(names)})"
        )
    shapes = {}
    for vi in inputs:
        declared = dims(vi)
        shape = [int(d) for d in (overrides.get(vi.name) or declared)]
        if any(d <= 0 for d in shape):
            raise PrepareError(
                f"input '{vi.name}' has a dynamic shape {declared}; TFLite needs static shapes: "
                f"set input_shapes = {{ {vi.name} = [...] }} on the model in targets.toml"
            )
        if len(shape) != len(declared) and declared:
            raise PrepareError(
                f"input_shapes.{vi.name} = {shape} has {len(shape)} dims, the model's input "
                f"has {len(declared)} ({declared})"
            )
        shapes[vi.name] = shape
    return shapes


def sanitise_node_names(model) -> int:
    """Rewrite node names the converters refuse; returns how many changed."""
    seen: set[str] = set()
    changed = 0
    for i, node in enumerate(model.graph.node):
        name = _BAD_NAME_CHARS.sub("_", node.name) if node.name else f"{node.op_type}_{i}"
        base, n = name, 1
        while name in seen:
            name, n = f"{base}_{n}", n + 1
        seen.add(name)
        if name != node.name:
            node.name = name
            changed += 1
    return changed


def fix_input_shapes(model, shapes: dict[str, list[int]]) -> None:
    for vi in model.graph.input:
        if vi.name in shapes:
            for dim, value in zip(vi.type.tensor_type.shape.dim, shapes[vi.name]):
                dim.ClearField("dim_param")
                dim.dim_value = value
    del model.graph.value_info[:]  # stale dynamic intermediate shapes; re-inferred below


def prepare(
    src: Path,
    shapes: dict[str, list[int]],
    simplified: Path,
    static_only: Path,
    int8: bool = False,
    quantized: bool = False,
) -> list[str]:
    """Write two prepared copies: `static_only` (static shapes, valid names) and `simplified`
    (that, constant-folded by onnxsim). With `int8` (integer-only), activations ai-edge-quantizer
    cannot quantize are rewritten (int8_friendly_activations); with `quantized` (any int8),
    Max/Min constant operands get their output's rank (full_rank_minmax_constants). Returns what was done, for the step's metadata;
    when onnxsim fails, `simplified` is the shape-inferred static copy and the note says why."""
    import onnx

    model = onnx.load(str(src))
    notes = []
    renamed = sanitise_node_names(model)
    if renamed:
        notes.append(f"renamed {renamed} node(s) with characters converters refuse")
    fix_input_shapes(model, shapes)
    notes.append("static input shapes " + ", ".join(f"{k}={v}" for k, v in shapes.items()))
    static = onnx.ModelProto()
    static.CopyFrom(model)
    try:
        import onnxsim

        folded, ok = onnxsim.simplify(model, overwrite_input_shapes=shapes)
        if not ok:
            raise RuntimeError("onnxsim's check of the simplified model failed")
        notes.append(
            f"constant folding with onnxsim ({len(model.graph.node)} -> {len(folded.graph.node)} nodes)"
        )
    except Exception as exc:  # onnxsim crashes on some graphs: convert unsimplified
        folded = onnx.shape_inference.infer_shapes(model)
        notes.append(
            f"onnxsim failed ({type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''}); "
            "shape inference only"
        )
    from .unroll_lstm import unroll_lstms

    unrolled = unroll_lstms(folded)
    unroll_lstms(static)
    if unrolled:
        notes.append(
            f"unrolled {unrolled} LSTM node(s) into per-step MatMul/Sigmoid/Tanh ops (onnx2tf's LSTM "
            "conversion gives wrong outputs)"
        )
    if quantized:
        widened = full_rank_minmax_constants(folded)
        full_rank_minmax_constants(static)
        if widened:
            notes.append(
                f"gave {widened} Max/Min constant operand(s) their output's rank (ai-edge-quantizer "
                "cannot quantize a lower-rank constant with the output's scale)"
            )
    if int8:
        rewritten = int8_friendly_activations(folded)
        int8_friendly_activations(static)
        if rewritten:
            notes.append(
                f"rewrote {rewritten} Clip/HardSigmoid/LeakyRelu node(s) into ops ai-edge-quantizer quantizes"
            )
    onnx.save(static, str(static_only))
    onnx.save(folded, str(simplified))
    return notes


# ------------------------------------------------------------------- Max/Min constants at full rank
# ai-edge-quantizer 0.10.0 quantizes every input of MAXIMUM/MINIMUM with the output's parameters,
# whose scale array has the output's rank; a constant operand of lower rank (a broadcast scalar
# [1] against [1, 256], as in a layer norm's max(var, eps)) fails its check "Ranks of scales (2)
# and zps (2) must be the same as the tensor rank (1)" and the whole model fails to quantize
# (measured on Magika). Reshaping the constant to [1, ..., 1, *shape] changes no value.


def full_rank_minmax_constants(model) -> int:
    """Give each constant operand of Max/Min the rank of the node's output; returns how many."""
    import onnx
    from onnx import numpy_helper

    inferred = onnx.shape_inference.infer_shapes(model)
    ranks = {
        vi.name: len(vi.type.tensor_type.shape.dim)
        for vi in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]
        if vi.type.tensor_type.HasField("shape")
    }
    inits = {i.name: i for i in model.graph.initializer}
    uses = {}
    for node in model.graph.node:
        for name in node.input:
            uses[name] = uses.get(name, 0) + 1
    changed = 0
    for node in model.graph.node:
        if node.op_type not in ("Max", "Min") or node.output[0] not in ranks:
            continue
        rank = ranks[node.output[0]]
        for k, name in enumerate(node.input):
            init = inits.get(name)
            if init is None or len(init.dims) >= rank:
                continue
            value = numpy_helper.to_array(init)
            widened = numpy_helper.from_array(
                value.reshape((1,) * (rank - value.ndim) + value.shape),
                f"{name}_rank{rank}" if uses[name] > 1 else name,
            )
            if uses[name] > 1:  # shared with other nodes: a copy for this one
                model.graph.initializer.append(widened)
                node.input[k] = widened.name
            else:
                init.CopyFrom(widened)
            changed += 1
    return changed


# ------------------------------------------------------------------- int8-friendly activations
# ai-edge-quantizer 0.10.0 quantizes RELU, MAXIMUM, MUL, ADD, SUB but not RELU6, RELU_0_TO_1,
# MINIMUM or LEAKY_RELU, which onnx2tf emits for Clip, HardSigmoid and LeakyRelu: in a full-int8
# model those stay float between DEQUANTIZE/QUANTIZE pairs (no Edge TPU, measured on a MobileNetV3).
# For integer-only int8 (the Edge TPU) these nodes are rewritten into ops it quantizes, with the
# same values. The price is CPU speed: LiteRT runs the int8 SUB of a broadcast constant on a slow
# path (a PP-OCR classifier: 19.5 ms against 0.5 ms with float islands), and x + (-c) instead
# aborts LiteRT's XNNPACK delegate, so plain int8 TFLite targets keep the float islands.
#   Clip(x, lo, hi)     = lo + Relu(x - lo) - Relu(x - hi)
#   HardSigmoid(x)      = Clip(alpha * x + beta, 0, 1)
#   LeakyRelu(x), a < 1 = Max(x, a * x)


def _constant_scalar(model, name: str) -> float | None:
    from onnx import numpy_helper

    for init in model.graph.initializer:
        if init.name == name:
            value = numpy_helper.to_array(init)
            return float(value.reshape(-1)[0]) if value.size == 1 else None
    for node in model.graph.node:
        if node.op_type == "Constant" and node.output[0] == name:
            for attr in node.attribute:
                if attr.name == "value":
                    value = numpy_helper.to_array(attr.t)
                    return float(value.reshape(-1)[0]) if value.size == 1 else None
    return None


def int8_friendly_activations(model) -> int:
    """Rewrite Clip / HardSigmoid / LeakyRelu (float inputs, constant bounds) in place; returns the
    number of nodes rewritten."""
    from onnx import TensorProto, helper

    fresh = iter(range(1 << 30))
    consts = []

    def const(value: float) -> str:
        name = f"edgebuild_c{next(fresh)}"
        consts.append(helper.make_tensor(name, TensorProto.FLOAT, [], [value]))
        return name

    def tmp(base: str) -> str:
        return f"{base}_edgebuild{next(fresh)}"

    def clip_nodes(x: str, y: str, lo: float | None, hi: float | None, base: str) -> list:
        nodes, lo_v = [], 0.0 if lo is None else lo
        shifted = x
        if lo_v != 0.0:
            shifted = tmp(base)
            nodes.append(helper.make_node("Sub", [x, const(lo_v)], [shifted], name=tmp(base)))
        upper = tmp(base)
        nodes.append(helper.make_node("Relu", [shifted], [upper], name=tmp(base)))
        result = upper
        if hi is not None:
            over, cut = tmp(base), tmp(base)
            nodes.append(helper.make_node("Sub", [x, const(hi)], [over], name=tmp(base)))
            nodes.append(helper.make_node("Relu", [over], [cut], name=tmp(base)))
            diff = tmp(base)
            nodes.append(helper.make_node("Sub", [upper, cut], [diff], name=tmp(base)))
            result = diff
        if lo_v != 0.0:  # x - (-c), never x + c: LiteRT aborts on an int8 ADD of a scalar constant
            nodes.append(helper.make_node("Sub", [result, const(-lo_v)], [y], name=tmp(base)))
        else:
            nodes.append(helper.make_node("Identity", [result], [y], name=tmp(base)))
        return nodes

    float_types = {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE}
    elem = {
        vi.name: vi.type.tensor_type.elem_type
        for vi in [*model.graph.value_info, *model.graph.input, *model.graph.output]
    }
    out, changed = [], 0
    for node in model.graph.node:
        if node.input and elem.get(node.input[0], TensorProto.FLOAT) not in float_types:
            out.append(node)  # integer Clip: Relu has no integer kernel to rewrite into
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        base = node.name or node.op_type
        if node.op_type == "Clip":
            if len(node.input) > 1 or node.attribute:  # opset >= 11: bounds are inputs
                lo = _constant_scalar(model, node.input[1]) if len(node.input) > 1 and node.input[1] else None
                hi = _constant_scalar(model, node.input[2]) if len(node.input) > 2 and node.input[2] else None
                missing = (len(node.input) > 1 and node.input[1] and lo is None) or (
                    len(node.input) > 2 and node.input[2] and hi is None
                )
                if "min" in attrs or "max" in attrs:
                    lo, hi, missing = attrs.get("min"), attrs.get("max"), False
                if not missing and (lo is not None or hi is not None):
                    out += clip_nodes(node.input[0], node.output[0], lo, hi, base)
                    changed += 1
                    continue
        elif node.op_type == "HardSigmoid":
            alpha, beta = attrs.get("alpha", 0.2), attrs.get("beta", 0.5)
            scaled, shifted = tmp(base), tmp(base)
            out.append(helper.make_node("Mul", [node.input[0], const(alpha)], [scaled], name=tmp(base)))
            out.append(helper.make_node("Sub", [scaled, const(-beta)], [shifted], name=tmp(base)))
            out += clip_nodes(shifted, node.output[0], 0.0, 1.0, base)
            changed += 1
            continue
        elif node.op_type == "LeakyRelu" and attrs.get("alpha", 0.01) < 1:
            scaled = tmp(base)
            out.append(
                helper.make_node(
                    "Mul", [node.input[0], const(attrs.get("alpha", 0.01))], [scaled], name=tmp(base)
                )
            )
            out.append(helper.make_node("Max", [node.input[0], scaled], [node.output[0]], name=tmp(base)))
            changed += 1
            continue
        out.append(node)
    if changed:
        del model.graph.node[:]
        model.graph.node.extend(out)
        model.graph.initializer.extend(consts)
    return changed
