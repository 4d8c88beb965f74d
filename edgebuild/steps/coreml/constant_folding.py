"""Turns nodes whose inputs are all constants into initializers before onnx2torch sees the graph.

onnx2torch reads Conv/Gemm weights only from initializers; models that compute their weights with
ConstantOfShape, Constant or Cast nodes (the onnx wheel's classic CNNs, exporter-inlined buffers)
otherwise fail with a KeyError on the weight's name. Nodes are evaluated one at a time with the
ONNX reference implementation, so folding is exact; random and control-flow ops are left alone.
"""

from __future__ import annotations

from typing import Any

_NEVER_FOLD = {
    "RandomNormal",
    "RandomNormalLike",
    "RandomUniform",
    "RandomUniformLike",
    "Multinomial",
    "Bernoulli",
    "If",
    "Loop",
    "Scan",
    "SequenceConstruct",
    "Dropout",
}
_MAX_ELEMENTS = 64 << 20  # a folded tensor larger than this stays a node


def _evaluate(node, constants: dict[str, Any], opsets) -> list[Any] | None:
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper
    from onnx.reference import ReferenceEvaluator

    inputs = [name for name in node.input if name]
    graph = helper.make_graph(
        [node],
        "fold",
        [],
        [helper.make_empty_tensor_value_info(name) for name in node.output],
        [numpy_helper.from_array(np.asarray(constants[name]), name) for name in inputs],
    )
    model = helper.make_model(graph, opset_imports=list(opsets))
    model.ir_version = min(model.ir_version, onnx.IR_VERSION)
    try:
        return ReferenceEvaluator(model).run(None, {})
    except Exception:
        return None  # leave anything the reference cannot evaluate to onnx2torch


def fold(model) -> int:
    """Fold constant subgraphs of `model` in place; returns how many nodes were folded."""
    import numpy as np
    from onnx import helper, numpy_helper

    graph = model.graph
    constants = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    graph_outputs = {o.name for o in graph.output}
    kept, folded = [], 0
    for node in graph.node:
        inputs = [name for name in node.input if name]
        foldable = (
            node.domain in ("", "ai.onnx")
            and node.op_type not in _NEVER_FOLD
            and all(name in constants for name in inputs)
            and not any(name in graph_outputs for name in node.output)
        )
        results = _evaluate(node, constants, model.opset_import) if foldable else None
        if results is None or any(np.asarray(r).size > _MAX_ELEMENTS for r in results):
            kept.append(node)
            continue
        for name, value in zip(node.output, results):
            tensor = numpy_helper.from_array(np.asarray(value), name)
            constants[name] = np.asarray(value)
            graph.initializer.append(tensor)
            if model.ir_version < 4:  # IR 3 requires every initializer to be a graph input too
                graph.input.append(helper.make_tensor_value_info(name, tensor.data_type, list(tensor.dims)))
        folded += 1
    if folded:
        del graph.node[:]
        graph.node.extend(kept)
        used = _names_used(kept) | graph_outputs
        survivors = [init for init in graph.initializer if init.name in used]
        del graph.initializer[:]
        graph.initializer.extend(survivors)
        # IR 3 models also list initializers as graph inputs: drop the ones that are gone
        dropped = set(constants) - used
        inputs = [vi for vi in graph.input if vi.name not in dropped]
        del graph.input[:]
        graph.input.extend(inputs)
    return folded


def _names_used(nodes) -> set[str]:
    """Every tensor name the nodes read, including inside If/Loop/Scan bodies (outer-scope reads)."""
    from onnx import AttributeProto

    used = set()
    for node in nodes:
        used.update(node.input)
        for attr in node.attribute:
            if attr.type == AttributeProto.GRAPH:
                used |= _names_used(attr.g.node)
            elif attr.type == AttributeProto.GRAPHS:
                for sub in attr.graphs:
                    used |= _names_used(sub.node)
    return used
