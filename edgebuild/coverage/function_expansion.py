"""Expanding an ONNX op that is defined as a function (Celu, LayerNormalization, Gelu...) into the
nodes of its body, with types inferred, the way a runtime without a dedicated kernel inlines it.
"""

from __future__ import annotations

from .graph_walk import STANDARD_DOMAINS, NodeInfo, TensorInfo, _Walker

EXPAND_DOMAIN = "edgebuild.expand"


def _function_for(node: NodeInfo):
    """The FunctionProto defining `node` at the model's opset, or None when the op has none."""
    import onnx
    import onnx.defs

    if node.opset is None:
        return None
    try:
        schema = onnx.defs.get_schema(node.op_type, node.opset, node.domain)
    except Exception:  # unknown op: nothing to expand
        return None
    fn = onnx.FunctionProto()
    try:
        if schema.has_function:
            versions = [v for v in schema.function_opset_versions if v <= node.opset]
            if not versions:
                return None
            fn.ParseFromString(schema.get_function_with_opset_version(max(versions)))
        elif schema.has_context_dependent_function:
            versions = [v for v in schema.context_dependent_function_opset_versions if v <= node.opset]
            if not versions:
                return None
            present = list(node.inputs)
            while present and present[-1] is None:
                present.pop()
            # onnx's C++ builders dereference the type of every input that is present: call them only
            # when those are known; an omitted optional input gets an empty type (builders skip it)
            if any(t is not None and _type_proto(t).WhichOneof("value") is None for t in present):
                return None
            types = [
                (_type_proto(t) if t is not None else onnx.TypeProto()).SerializeToString() for t in present
            ]
            body = schema.get_context_dependent_function_with_opset_version(
                max(versions), node.proto.SerializeToString(), types
            )
            if not body:
                return None
            fn.ParseFromString(body)
        else:
            return None
    except Exception:  # the schema refuses this node's attributes/types: no expansion
        return None
    return fn if len(fn.node) else None


def _type_proto(t: TensorInfo):
    import onnx
    from onnx import TensorProto, helper

    tp = onnx.TypeProto()
    if t.type_proto is not None and t.type_proto.WhichOneof("value") is not None:
        tp.CopyFrom(t.type_proto)
    elif t.type and t.type.startswith("tensor("):
        elem = getattr(TensorProto, t.type[len("tensor(") : -1].upper(), TensorProto.UNDEFINED)
        shape = None if t.shape is None else [d if isinstance(d, (int, str)) else None for d in t.shape]
        tp.CopyFrom(helper.make_tensor_type_proto(elem, shape))
    return tp


def expand_function_node(node: NodeInfo, ir_version: int) -> list[NodeInfo] | None:
    """The typed body nodes of a function-defined op, or None when it is not one."""
    import onnx
    import onnx.inliner
    from onnx import helper

    fn = _function_for(node)
    if fn is None:
        return None
    fn.domain, fn.name = EXPAND_DOMAIN, node.op_type
    call = onnx.NodeProto()
    call.CopyFrom(node.proto)
    call.domain = EXPAND_DOMAIN
    call.ClearField("name")
    inputs, seen = [], set()
    for t in node.inputs:
        if t is not None and t.name not in seen:
            seen.add(t.name)
            inputs.append(helper.make_value_info(t.name, _type_proto(t)))
    outputs = [helper.make_value_info(t.name, onnx.TypeProto()) for t in node.outputs if t is not None]
    opsets = {("" if o.domain in STANDARD_DOMAINS else o.domain): o.version for o in fn.opset_import}
    opsets.setdefault("", node.opset)
    graph = helper.make_graph([call], "expand", inputs, outputs)
    imports = [helper.make_opsetid(d, v) for d, v in opsets.items()] + [helper.make_opsetid(EXPAND_DOMAIN, 1)]
    model = helper.make_model(graph, opset_imports=imports, ir_version=max(ir_version, 8))
    model.functions.append(fn)
    try:
        inlined = onnx.inliner.inline_local_functions(model)
        inferred = onnx.shape_inference.infer_shapes(inlined, check_type=False, strict_mode=False)
    except Exception:  # inference of the expanded body failed: no typed expansion
        return None
    walker = _Walker(inferred, opsets)
    walker.walk_graph(inferred.graph, f"{node.where}/{node.op_type}", {}, opsets, function=node.op_type)
    return walker.nodes
