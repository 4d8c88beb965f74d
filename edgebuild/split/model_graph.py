"""The model as the planner sees it: nodes in topological order, the tensors between them, and
each tensor's size in bytes at the declared input shapes.

Only nodes that depend on a graph input take part in a cut ("dynamic" nodes). Nodes fed by
initializers and constants alone are folded by onnxruntime and are extracted into whichever half
needs them, so they never cross the link. A node with subgraphs (If, Loop, Scan) is one node: its
subgraphs' references to outer tensors count as its inputs, so no cut goes through it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class Node:
    name: str
    op_type: str
    inputs: list[str]  # tensor names, outer-scope references of subgraphs included
    outputs: list[str]


@dataclass
class TensorInfo:
    name: str
    dtype: str  # numpy dtype name
    shape: list[int]

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize

    def wire_bytes(self, intermediate: str) -> int:
        """Bytes on the wire at the chosen intermediate precision (float tensors only are
        converted; int8 adds one float32 scale)."""
        count = int(np.prod(self.shape, dtype=np.int64))
        if np.dtype(self.dtype).kind != "f" or intermediate == "fp32":
            return self.nbytes
        return count * 2 if intermediate == "fp16" else count + 4


@dataclass
class ModelGraph:
    model: object  # onnx.ModelProto: fixed input shapes, unique node names
    nodes: list[Node]  # dynamic nodes, topological order
    inputs: list[str]  # graph inputs (not initializers)
    outputs: list[str]
    tensors: dict[str, TensorInfo]  # every dynamic tensor (graph inputs included)
    producer: dict[str, str] = field(default_factory=dict)  # tensor -> node name
    consumers: dict[str, list[str]] = field(default_factory=dict)  # dynamic tensor -> dynamic node names

    @property
    def names(self) -> list[str]:
        return [n.name for n in self.nodes]

    def node(self, name: str) -> Node:
        return self._by_name[name]

    def __post_init__(self) -> None:
        self._by_name = {n.name: n for n in self.nodes}

    @property
    def input_bytes(self) -> int:
        return sum(self.tensors[i].nbytes for i in self.inputs)

    def crossing(self, device: set[str] | frozenset[str]) -> list[str]:
        """The tensors the device must send when it runs the nodes `device` (closed under
        predecessors): produced there (or graph inputs) and consumed by a server node."""
        if len(device) == len(self.nodes):
            return []
        sent = []
        for tensor in list(self.inputs) + [o for n in self.nodes if n.name in device for o in n.outputs]:
            if any(c not in device for c in self.consumers.get(tensor, ())):
                if tensor not in sent:
                    sent.append(tensor)
        return sent

    def is_closed(self, device: set[str] | frozenset[str]) -> bool:
        """True when every producer of a device node's input runs on the device too (a valid cut)."""
        for name in device:
            for tensor in self.node(name).inputs:
                p = self.producer.get(tensor)
                if p is not None and p not in device:
                    return False
        return True

    def ancestors(self, name: str) -> set[str]:
        seen, stack = set(), [name]
        while stack:
            n = stack.pop()
            if n in seen:
                continue
            seen.add(n)
            stack.extend(self.producer[t] for t in self.node(n).inputs if t in self.producer)
        return seen


def _subgraph_refs(attr_graphs) -> set[str]:
    """Names a node's subgraphs read from the enclosing scope."""
    refs: set[str] = set()
    for g in attr_graphs:
        defined = {i.name for i in g.input} | {i.name for i in g.initializer}
        for node in g.node:
            defined.update(node.output)
        for node in g.node:
            refs.update(t for t in node.input if t and t not in defined)
            refs.update(r for r in _subgraph_refs(_graphs_of(node)) if r not in defined)
    return refs


def _graphs_of(node) -> list:
    import onnx

    out = []
    for a in node.attribute:
        if a.type == onnx.AttributeProto.GRAPH:
            out.append(a.g)
        elif a.type == onnx.AttributeProto.GRAPHS:
            out.extend(a.graphs)
    return out


def prepare_model(source: Path, input_shapes: dict[str, list[int]]):
    """The source model with its inputs fixed to `input_shapes` (dynamic dims must be given) and a
    unique name on every node (profiles and cuts refer to nodes by name)."""
    import onnx

    model = onnx.load(str(source))
    inits = {i.name for i in model.graph.initializer}
    for value in model.graph.input:
        if value.name in inits:
            continue
        dims = value.type.tensor_type.shape.dim
        shape = input_shapes.get(value.name)
        if shape is None:
            fixed = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in dims]
            if None in fixed:
                raise ValueError(
                    f"input '{value.name}' has a dynamic shape: declare it in the model's input_shapes"
                )
            continue
        if len(shape) != len(dims):
            raise ValueError(
                f"input_shapes.{value.name} has rank {len(shape)}, the model's input has rank {len(dims)}"
            )
        for dim, size in zip(dims, shape):
            dim.Clear()
            dim.dim_value = int(size)
    used = set()
    for i, node in enumerate(model.graph.node):
        name = node.name or f"{node.op_type}_{i}"
        while name in used:
            name = f"{name}_{i}"
        used.add(name)
        node.name = name
    # outputs' dims may be symbolic in the source: clear them, shape inference fills them in
    for value in model.graph.output:
        for dim in value.type.tensor_type.shape.dim:
            if not (dim.HasField("dim_value") and dim.dim_value > 0):
                dim.Clear()
    return model


def analyse(model) -> ModelGraph:
    """Nodes, dynamic tensors and their sizes of a prepared model (see prepare_model)."""
    g = model.graph
    inits = {i.name for i in g.initializer}
    inputs = [v.name for v in g.input if v.name not in inits]
    outputs = [v.name for v in g.output]
    all_nodes = [
        Node(
            n.name,
            n.op_type,
            [t for t in n.input if t] + sorted(_subgraph_refs(_graphs_of(n))),
            list(n.output),
        )
        for n in g.node
    ]
    # dynamic: depends on a graph input; live: reaches a graph output
    dynamic_tensors = set(inputs)
    dynamic = []
    for n in all_nodes:  # ONNX requires topological order
        if any(t in dynamic_tensors for t in n.inputs):
            dynamic.append(n)
            dynamic_tensors.update(n.outputs)
    needed = set(outputs)
    live = []
    for n in reversed(dynamic):
        if any(o in needed for o in n.outputs):
            live.append(n)
            needed.update(n.inputs)
    nodes = list(reversed(live))
    producer = {o: n.name for n in nodes for o in n.outputs}
    consumers: dict[str, list[str]] = {}
    for n in nodes:
        for t in dict.fromkeys(n.inputs):
            if t in dynamic_tensors:
                consumers.setdefault(t, []).append(n.name)
    wanted = set(inputs) | set(producer)
    tensors = tensor_infos(model, wanted)
    return ModelGraph(
        model=model,
        nodes=nodes,
        inputs=inputs,
        outputs=outputs,
        tensors=tensors,
        producer=producer,
        consumers=consumers,
    )


def tensor_infos(model, names: set[str]) -> dict[str, TensorInfo]:
    """dtype and static shape of each named tensor: onnx shape inference (with data propagation),
    then, for what it leaves unknown, one onnxruntime run that returns those tensors."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception:  # some exporters' graphs defeat inference; onnxruntime fills the gaps below
        inferred = model
    infos: dict[str, TensorInfo] = {}
    values = list(inferred.graph.input) + list(inferred.graph.value_info) + list(inferred.graph.output)
    for v in values:
        if v.name not in names or not v.type.HasField("tensor_type"):
            continue
        t = v.type.tensor_type
        dims = (
            [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in t.shape.dim]
            if t.HasField("shape")
            else None
        )
        if t.elem_type and dims is not None and None not in dims:
            infos[v.name] = TensorInfo(v.name, onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name, dims)
    missing = sorted(names - set(infos))
    if missing:
        infos.update(_shapes_by_running(model, missing))
    return infos


def _shapes_by_running(model, names: list[str]) -> dict[str, TensorInfo]:
    import onnx
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    for name in names:
        if name not in {o.name for o in probe.graph.output}:
            probe.graph.output.append(onnx.ValueInfoProto(name=name))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
    feeds = example_feeds(model)
    values = session.run(names, feeds)
    return {
        n: TensorInfo(n, np.asarray(v).dtype.name, list(np.asarray(v).shape)) for n, v in zip(names, values)
    }


def example_feeds(model, seed: int = 0) -> dict:
    """Random inputs at the model's (fixed) input shapes: only shapes matter where this is used."""
    import onnx

    rng = np.random.default_rng(seed)
    inits = {i.name for i in model.graph.initializer}
    feeds = {}
    for v in model.graph.input:
        if v.name in inits:
            continue
        t = v.type.tensor_type
        dtype = onnx.helper.tensor_dtype_to_np_dtype(t.elem_type)
        shape = [d.dim_value for d in t.shape.dim]
        feeds[v.name] = (rng.random(shape) if dtype.kind == "f" else np.zeros(shape)).astype(dtype)
    return feeds
