"""Graph rewrites that hold at inference time and spare onnx2torch ops it lacks in old opsets.

Dropout is the identity at inference (ONNX: when training_mode is absent or false), but
onnx2torch 1.5.15 has no converter for Dropout before opset 10, which classic exported CNNs use.
Its consumers are rewired to its input and the node dropped; a Dropout whose output is a graph
output or whose mask is read is left for onnx2torch to judge.
"""

from __future__ import annotations


def _rename_inputs(nodes, old: str, new: str) -> None:
    from onnx import AttributeProto

    for node in nodes:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new
        for attr in node.attribute:
            if attr.type == AttributeProto.GRAPH:
                _rename_inputs(attr.g.node, old, new)
            elif attr.type == AttributeProto.GRAPHS:
                for sub in attr.graphs:
                    _rename_inputs(sub.node, old, new)


def drop_inference_dropout(model) -> int:
    """Remove inference-mode Dropout nodes in place; returns how many were removed."""
    graph = model.graph
    graph_outputs = {o.name for o in graph.output}
    read = {name for node in graph.node for name in node.input}
    removed = []
    for node in graph.node:
        if node.op_type != "Dropout" or node.domain not in ("", "ai.onnx"):
            continue
        training = len(node.input) > 2 and node.input[2]  # a training_mode input: leave it
        mask_read = len(node.output) > 1 and node.output[1] in read | graph_outputs
        if training or mask_read or node.output[0] in graph_outputs:
            continue
        removed.append(node)
    for node in removed:
        _rename_inputs(graph.node, node.output[0], node.input[0])
        graph.node.remove(node)
    return len(removed)
