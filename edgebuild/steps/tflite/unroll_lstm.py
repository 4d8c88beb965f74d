"""ONNX LSTM unrolled into MatMul/Add/Sigmoid/Tanh/Mul per time step, before onnx2tf.

onnx2tf 2.6.9's flatbuffer_direct backend turns an ONNX LSTM into a file that LiteRT runs without
complaint and whose outputs are wrong (measured: a 6-step, 5-unit forward LSTM at cosine 0.82-0.84
against onnxruntime without an initial state and -0.55 with one; a grapheme-to-phoneme encoder
from PyPI at 0.58 and 0.74). With a static sequence length the same recurrence written as
elementary ops converts exactly and quantizes like any MatMul network.

Unrolled: the default activations (Sigmoid, Tanh, Tanh), forward, reverse or bidirectional,
layout 0 (onnxruntime, which verification compares with, runs no other), optional bias and initial
states, W and R constant, no peepholes, no clip, no
input_forget, no sequence_lens, at most MAX_STEPS steps. Any other LSTM is left as it is.
ONNX gate order: input, output, forget, cell.
"""

from __future__ import annotations

MAX_STEPS = 512
DEFAULT_ACTIVATIONS = ("Sigmoid", "Tanh", "Tanh")


def unroll_lstms(model) -> int:
    """Replace each LSTM it can unroll in `model` (in place); returns how many."""
    from onnx import shape_inference

    graph = model.graph
    inferred = shape_inference.infer_shapes(model).graph
    shapes = {
        vi.name: [d.dim_value if d.HasField("dim_value") else None for d in vi.type.tensor_type.shape.dim]
        for vi in list(inferred.value_info) + list(inferred.input) + list(inferred.output)
    }
    inits = {i.name: i for i in graph.initializer}
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 13)
    nodes, count = [], 0
    for index, node in enumerate(graph.node):
        if node.op_type == "LSTM" and node.domain in ("", "ai.onnx"):
            built = _unrolled(node, shapes, inits, opset, f"{node.name or 'lstm'}_{index}_unrolled")
            if built is not None:
                new_nodes, new_inits = built
                nodes += new_nodes
                graph.initializer.extend(new_inits)
                count += 1
                continue
        nodes.append(node)
    if count:
        del graph.node[:]
        graph.node.extend(nodes)
    return count


def _attrs(node) -> dict:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _unrolled(node, shapes: dict, inits: dict, opset: int, prefix: str):
    """(nodes, initializers) computing the LSTM's outputs step by step, or None when not supported."""
    import numpy as np
    from onnx import helper, numpy_helper

    attrs = _attrs(node)
    ins = list(node.input) + [""] * (8 - len(node.input))
    x, w, r, b, seq_lens, init_h, init_c, peep = ins[:8]
    direction = attrs.get("direction", b"forward")
    direction = direction.decode() if isinstance(direction, bytes) else direction
    dirs = 2 if direction == "bidirectional" else 1
    activations = tuple(a.decode() if isinstance(a, bytes) else a for a in attrs.get("activations", []))
    if (
        attrs.get("layout", 0)
        or w not in inits
        or r not in inits
        or (b and b not in inits)
        or seq_lens
        or peep
        or "clip" in attrs
        or attrs.get("input_forget", 0)
        or (activations and activations != DEFAULT_ACTIVATIONS * dirs)
        or direction not in ("forward", "reverse", "bidirectional")
    ):
        return None
    x_shape = shapes.get(x)
    if not x_shape or len(x_shape) != 3 or any(d is None or d <= 0 for d in x_shape):
        return None
    steps, batch, _ = x_shape
    if steps > MAX_STEPS:
        return None
    weights = numpy_helper.to_array(inits[w]).astype(np.float32)
    recurrent = numpy_helper.to_array(inits[r]).astype(np.float32)
    hidden = recurrent.shape[-1]
    bias = (
        numpy_helper.to_array(inits[b]).astype(np.float32) if b else np.zeros((dirs, 8 * hidden), np.float32)
    )

    nodes, new_inits, counter = [], [], [0]

    def name(tag: str) -> str:
        counter[0] += 1
        return f"{prefix}/{tag}{counter[0]}"

    def const(tag: str, value) -> str:
        tensor = numpy_helper.from_array(np.asarray(value), name(tag))
        new_inits.append(tensor)
        return tensor.name

    def op(kind: str, inputs: list[str], out: str | None = None, **kwargs) -> str:
        out = out or name(kind.lower())
        nodes.append(helper.make_node(kind, inputs, [out], name=out, **kwargs))
        return out

    def split4(gates: str) -> list[str]:
        outs = [name("gate") for _ in range(4)]
        if opset >= 13:
            sizes = const("split", np.full(4, hidden, np.int64))
            nodes.append(helper.make_node("Split", [gates, sizes], outs, name=outs[0] + "_split", axis=1))
        else:
            nodes.append(
                helper.make_node("Split", [gates], outs, name=outs[0] + "_split", axis=1, split=[hidden] * 4)
            )
        return outs

    step_index = [const("t", np.array(t, np.int64)) for t in range(steps)]
    row_shape = const("shape", np.array([1, batch, hidden], np.int64))
    ys, hs, cs = [], [], []
    for d in range(dirs):
        w_t = const("w", weights[d].T.copy())  # [I, 4H]
        r_t = const("r", recurrent[d].T.copy())  # [H, 4H]
        xw = op("Add", [op("MatMul", [x, w_t]), const("b", bias[d, : 4 * hidden] + bias[d, 4 * hidden :])])

        def initial(tensor: str) -> str:
            if not tensor:
                return const("zero", np.zeros((batch, hidden), np.float32))
            return op("Gather", [tensor, const("d", np.array(d, np.int64))], axis=0)  # [B, H]

        h, c = initial(init_h), initial(init_c)
        backward = direction == "reverse" or d == 1
        order = range(steps - 1, -1, -1) if backward else range(steps)
        per_step = {}
        for t in order:
            gates = op("Add", [op("Gather", [xw, step_index[t]], axis=0), op("MatMul", [h, r_t])])
            i, o, f, g = split4(gates)
            c = op(
                "Add", [op("Mul", [op("Sigmoid", [f]), c]), op("Mul", [op("Sigmoid", [i]), op("Tanh", [g])])]
            )
            h = op("Mul", [op("Sigmoid", [o]), op("Tanh", [c])])
            per_step[t] = op("Reshape", [h, row_shape])  # [1, B, H]
        ys.append(op("Concat", [per_step[t] for t in range(steps)], axis=0))  # [T, B, H]
        hs.append(h)
        cs.append(c)

    # the LSTM's own output names are written by the last op of each (no Identity: onnx2tf leaves
    # a graph output fed through one without data)
    outs = list(node.output) + [""] * (3 - len(node.output))
    y_name, h_name, c_name = outs[:3]
    if y_name:
        shape = const("shape", np.array([steps, 1, batch, hidden], np.int64))
        if dirs == 1:
            op("Reshape", [ys[0], shape], out=y_name)  # [T, 1, B, H]
        else:
            op("Concat", [op("Reshape", [y, shape]) for y in ys], out=y_name, axis=1)  # [T, D, B, H]
    for wanted, parts in ((h_name, hs), (c_name, cs)):
        if not wanted:
            continue
        if dirs == 1:
            op("Reshape", [parts[0], row_shape], out=wanted)  # [1, B, H]
        else:
            op("Concat", [op("Reshape", [p, row_shape]) for p in parts], out=wanted, axis=0)  # [D, B, H]
    return nodes, new_inits
