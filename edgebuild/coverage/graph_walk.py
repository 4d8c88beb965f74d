"""Reading an ONNX model into flat node records: every node (inside If/Loop/Scan bodies and
model-local functions too) with its domain, opset, input/output types and shapes, attributes and
multiply-accumulate count. Weights stored as external data are never read; MACs come from shapes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import prod
from pathlib import Path
from typing import Any

MAX_CONST_ELEMENTS = 64  # small integer constants (axes, pads, shapes) are kept for rule checks
STANDARD_DOMAINS = {"", "ai.onnx"}


class ModelLoadError(Exception):
    """The file is not a readable ONNX model, or the settings do not fit it (names file and key)."""


@dataclass
class TensorInfo:
    name: str
    type: str | None = None  # ONNX type string: "tensor(float)", "seq(tensor(int64))", ...
    shape: tuple | None = None  # ints; str for a symbolic dim; None for an unknown dim
    constant: bool = False  # an initializer or Constant output
    value: list | None = None  # small constant values, flattened
    type_proto: Any = field(default=None, repr=False, compare=False)  # the onnx TypeProto, when declared

    @property
    def dtype(self) -> str | None:
        """Short element type of a plain tensor ("float32", "int64"), else None."""
        if not self.type or not self.type.startswith("tensor("):
            return None
        elem = self.type[len("tensor(") : -1]
        return {"float": "float32", "double": "float64"}.get(elem, elem)

    @property
    def static(self) -> bool:
        return self.shape is not None and all(isinstance(d, int) and d >= 0 for d in self.shape)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "shape": list(self.shape) if self.shape is not None else None,
        }


@dataclass
class NodeInfo:
    index: int
    name: str
    op_type: str
    domain: str  # "" for the default ONNX domain
    opset: int | None  # version of `domain` imported by the model (or the function)
    since_version: int | None  # the schema version that opset resolves to (None: unknown op)
    path: str  # "" in the main graph; "Loop_3/body" inside a subgraph
    inputs: list[TensorInfo | None]  # None for an omitted optional input
    outputs: list[TensorInfo | None]
    attrs: dict[str, Any] = field(default_factory=dict)
    subgraphs: tuple[str, ...] = ()  # attribute names holding graphs
    macs: int = 0
    function: str | None = None  # the model-local function this node was expanded from
    proto: Any = None  # the onnx NodeProto (for function expansion)

    @property
    def qualified_op(self) -> str:
        return f"{self.domain}::{self.op_type}" if self.domain not in STANDARD_DOMAINS else self.op_type

    @property
    def where(self) -> str:
        return f"{self.path}/{self.name}" if self.path else self.name


@dataclass
class WalkedGraph:
    path: Path
    ir_version: int
    opsets: dict[str, int]
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    nodes: list[NodeInfo]
    external_data: bool = False
    warnings: list[str] = field(default_factory=list)
    proto: Any = None  # the ModelProto after shape inference (weights not loaded)

    @property
    def dynamic_inputs(self) -> list[TensorInfo]:
        return [t for t in self.inputs if not t.static]

    @property
    def local_functions(self) -> set[tuple[str, str]]:
        """(domain, name) of model-local functions; nodes calling them are expanded in the walk."""
        if self.proto is None:
            return set()
        return {("" if f.domain in STANDARD_DOMAINS else f.domain, f.name) for f in self.proto.functions}

    def calls_local_function(self, node: "NodeInfo") -> bool:
        return (node.domain, node.op_type) in self.local_functions

    def static_nodes(self) -> set[int]:
        """Nodes a converter folds into constants: all inputs constant, or Shape/Size of a tensor with
        a static shape, or computed only from such values (shape arithmetic)."""
        known: set[str] = set()
        folded: set[int] = set()
        for node in self.nodes:
            ins = [t for t in node.inputs if t is not None]
            shape_of_static = node.op_type in ("Shape", "Size") and ins and ins[0].static
            if (
                node.op_type == "Constant"
                or (ins and all(t.constant or t.name in known for t in ins))
                or shape_of_static
            ):
                folded.add(node.index)
                known.update(t.name for t in node.outputs if t is not None)
        return folded

    @property
    def total_macs(self) -> int:
        return sum(n.macs for n in self.nodes)


def type_string(type_proto) -> str | None:
    """The ONNX type string of a TypeProto, the notation schemas and onnxruntime kernels use."""
    from onnx import TensorProto

    which = type_proto.WhichOneof("value")
    if which == "tensor_type":
        if not type_proto.tensor_type.elem_type:
            return None
        return f"tensor({TensorProto.DataType.Name(type_proto.tensor_type.elem_type).lower()})"
    if which == "sparse_tensor_type":
        return f"sparse_tensor({TensorProto.DataType.Name(type_proto.sparse_tensor_type.elem_type).lower()})"
    if which == "sequence_type":
        inner = type_string(type_proto.sequence_type.elem_type)
        return f"seq({inner})" if inner else None
    if which == "optional_type":
        inner = type_string(type_proto.optional_type.elem_type)
        return f"optional({inner})" if inner else None
    if which == "map_type":
        key = TensorProto.DataType.Name(type_proto.map_type.key_type).lower()
        inner = type_string(type_proto.map_type.value_type)
        return f"map({key},{inner})" if inner else None
    return None


def _shape_of(type_proto) -> tuple | None:
    if type_proto.WhichOneof("value") != "tensor_type" or not type_proto.tensor_type.HasField("shape"):
        return None
    dims = []
    for d in type_proto.tensor_type.shape.dim:
        which = d.WhichOneof("value")
        dims.append(
            d.dim_value if which == "dim_value" else (d.dim_param or None) if which == "dim_param" else None
        )
    return tuple(dims)


def _info_from_value(vi) -> TensorInfo:
    return TensorInfo(vi.name, type_string(vi.type), _shape_of(vi.type), type_proto=vi.type)


def _info_from_tensor(t) -> TensorInfo:
    from onnx import TensorProto, numpy_helper

    info = TensorInfo(
        t.name, f"tensor({TensorProto.DataType.Name(t.data_type).lower()})", tuple(t.dims), True
    )
    n = prod(t.dims) if t.dims else 1
    external = t.data_location == TensorProto.EXTERNAL
    if (
        n <= MAX_CONST_ELEMENTS
        and not external
        and t.data_type
        in (
            TensorProto.INT64,
            TensorProto.INT32,
            TensorProto.FLOAT,
            TensorProto.INT8,
            TensorProto.UINT8,
            TensorProto.BOOL,
        )
    ):
        try:
            info.value = numpy_helper.to_array(t).reshape(-1).tolist()
        except Exception:  # malformed small constant: the value is only a hint for rule checks
            info.value = None
    return info


def _attribute_values(node) -> tuple[dict[str, Any], tuple[str, ...]]:
    from onnx import AttributeProto, helper

    attrs: dict[str, Any] = {}
    graphs: list[str] = []
    for a in node.attribute:
        if a.type in (AttributeProto.GRAPH, AttributeProto.GRAPHS):
            graphs.append(a.name)
            continue
        if a.ref_attr_name:  # inside a function: refers to the caller's attribute
            attrs[a.name] = f"@{a.ref_attr_name}"
            continue
        if a.type == AttributeProto.TENSOR:
            attrs[a.name] = _info_from_tensor(a.t)
            continue
        try:
            value = helper.get_attribute_value(a)
        except Exception:
            value = None
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        elif isinstance(value, list):
            value = [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in value]
        elif not isinstance(value, (int, float, str)) and value is not None:
            value = str(type(value).__name__)
        attrs[a.name] = value
    return attrs, tuple(graphs)


def _known(shape: tuple | None) -> bool:
    return shape is not None and all(isinstance(d, int) and d > 0 for d in shape)


def count_macs(
    op_type: str, inputs: list[TensorInfo | None], outputs: list[TensorInfo | None], attrs: dict[str, Any]
) -> int:
    """Multiply-accumulates of the compute-heavy ops, from shapes alone (0 when shapes are unknown)."""

    def shp(lst, i):
        return lst[i].shape if i < len(lst) and lst[i] is not None and _known(lst[i].shape) else None

    y = shp(outputs, 0)
    if op_type in ("Conv", "ConvInteger", "QLinearConv"):
        w = shp(inputs, 3 if op_type == "QLinearConv" else 1)
        if y and w and len(w) >= 2:
            return prod(y) * prod(w[1:])
    elif op_type in ("ConvTranspose",):
        x, w = shp(inputs, 0), shp(inputs, 1)
        if x and w and len(w) >= 2:
            return prod(x) * prod(w[1:])
    elif op_type in ("MatMul", "MatMulInteger", "QLinearMatMul", "Gemm"):
        a = shp(inputs, 0)
        if y and a:
            k = a[0] if op_type == "Gemm" and attrs.get("transA") else a[-1]
            return prod(y) * k
    elif op_type in ("LSTM", "GRU", "RNN"):
        x, w, r = shp(inputs, 0), shp(inputs, 1), shp(inputs, 2)
        if x and w and r:
            seq, batch = (x[1], x[0]) if attrs.get("layout") else (x[0], x[1])
            return seq * batch * w[0] * w[1] * (w[2] + r[2])  # directions * gates*hidden * (input + hidden)
    return 0


class _Walker:
    def __init__(self, model, opsets: dict[str, int]):
        self.model = model
        self.opsets = opsets
        self.nodes: list[NodeInfo] = []
        self.functions = {(f.domain, f.name): f for f in model.functions}

    def since_version(self, op_type: str, domain: str, opset: int | None) -> int | None:
        import onnx.defs

        if opset is None:
            return None
        try:
            return onnx.defs.get_schema(op_type, opset, domain).since_version
        except Exception:  # unknown op or domain: onnx has no schema for it
            return None

    def walk_graph(
        self,
        graph,
        path: str,
        outer: dict[str, TensorInfo],
        opsets: dict[str, int],
        function: str | None = None,
    ) -> None:
        scope = dict(outer)
        for vi in list(graph.input) + list(graph.output) + list(graph.value_info):
            scope[vi.name] = _info_from_value(vi)
        for t in graph.initializer:
            scope[t.name] = _info_from_tensor(t)
        for t in graph.sparse_initializer:
            scope[t.values.name] = TensorInfo(t.values.name, "sparse_tensor", tuple(t.dims), True)
        self.walk_nodes(graph.node, path, scope, opsets, function)

    def walk_nodes(
        self, nodes, path: str, scope: dict[str, TensorInfo], opsets: dict[str, int], function: str | None
    ) -> None:
        for node in nodes:
            attrs, graphs = _attribute_values(node)
            ins = [scope.get(n, TensorInfo(n)) if n else None for n in node.input]
            outs = [scope.get(n, TensorInfo(n)) if n else None for n in node.output]
            if node.op_type == "Constant" and node.domain in STANDARD_DOMAINS and outs and outs[0]:
                value = attrs.get("value")
                if isinstance(value, TensorInfo):
                    outs[0] = TensorInfo(
                        outs[0].name,
                        outs[0].type or value.type,
                        outs[0].shape or value.shape,
                        True,
                        value.value,
                        outs[0].type_proto,
                    )
                    scope[outs[0].name] = outs[0]
            domain = "" if node.domain in STANDARD_DOMAINS else node.domain
            opset = opsets.get(domain)
            name = node.name or f"{node.op_type}_{len(self.nodes)}"
            info = NodeInfo(
                len(self.nodes),
                name,
                node.op_type,
                domain,
                opset,
                self.since_version(node.op_type, domain, opset),
                path,
                ins,
                outs,
                attrs,
                graphs,
                count_macs(node.op_type, ins, outs, attrs),
                function,
                node,
            )
            self.nodes.append(info)
            for a in node.attribute:
                if a.name not in graphs:
                    continue
                for i, g in enumerate([a.g] if a.HasField("g") else list(a.graphs)):
                    sub = f"{info.where}/{a.name}" + (f"[{i}]" if len(a.graphs) > 1 else "")
                    self.walk_graph(g, sub, scope, opsets, function)
            fn = self.functions.get((node.domain, node.op_type))
            if fn is not None and function != fn.name:
                self.walk_function(fn, info)

    def walk_function(self, fn, caller: NodeInfo) -> None:
        opsets = {("" if o.domain in STANDARD_DOMAINS else o.domain): o.version for o in fn.opset_import}
        scope = {}
        for formal, actual in zip(fn.input, caller.inputs):
            if actual is not None:
                scope[formal] = TensorInfo(
                    formal, actual.type, actual.shape, actual.constant, actual.value, actual.type_proto
                )
        for vi in getattr(fn, "value_info", []):
            scope[vi.name] = _info_from_value(vi)
        self.walk_nodes(fn.node, f"{caller.where}/{fn.name}", scope, opsets or self.opsets, fn.name)


def apply_input_shapes(model, input_shapes: dict[str, list] | None, source: str) -> None:
    """Fix dynamic input dimensions from the user's `input_shapes` (a mistake names the input)."""
    if not input_shapes:
        return
    initializers = {t.name for t in model.graph.initializer}
    graph_inputs = {vi.name: vi for vi in model.graph.input if vi.name not in initializers}
    for name, dims in input_shapes.items():
        vi = graph_inputs.get(name)
        if vi is None:
            raise ModelLoadError(
                f"{source}: input_shapes names '{name}', but the model's inputs are "
                f"{', '.join(graph_inputs) or '(none)'}"
            )
        tensor = vi.type.tensor_type
        if len(tensor.shape.dim) and len(tensor.shape.dim) != len(dims):
            raise ModelLoadError(
                f"{source}: input_shapes['{name}'] has {len(dims)} dims, the model's input "
                f"has {len(tensor.shape.dim)}"
            )
        tensor.ClearField("shape")
        for d in dims:
            if not isinstance(d, int) or d <= 0:
                raise ModelLoadError(
                    f"{source}: input_shapes['{name}'] must be positive integers, got {dims}"
                )
            tensor.shape.dim.add().dim_value = d


def load_model_proto(path: Path):
    """The ModelProto without external weights, or ModelLoadError naming the file."""
    import onnx

    try:
        return onnx.load(str(path), load_external_data=False)
    except FileNotFoundError:
        raise ModelLoadError(f"{path}: model file not found") from None
    except Exception as exc:  # protobuf DecodeError and friends: not an ONNX file
        raise ModelLoadError(f"{path}: not a readable ONNX model ({type(exc).__name__}: {exc})") from None


STRIP_BYTES = 1 << 16


def strip_large_weights(model) -> int:
    """Turn big embedded initializers into external-data stubs: shape inference needs only their
    dims and types, and copying 100 MB of weights through it twice costs more than the whole check."""
    from onnx import TensorProto

    stripped = 0
    for graph_tensor in model.graph.initializer:
        size = len(graph_tensor.raw_data) if graph_tensor.HasField("raw_data") else 0
        if size > STRIP_BYTES:
            graph_tensor.ClearField("raw_data")
            graph_tensor.data_location = TensorProto.EXTERNAL
            del graph_tensor.external_data[:]
            entry = graph_tensor.external_data.add()
            entry.key, entry.value = "location", "edgebuild-stripped-weights"
            stripped += size
    return stripped


def infer_types(model, warnings: list[str]):
    """ONNX shape inference; on failure keep the declared types and say so."""
    import onnx

    try:
        return onnx.shape_inference.infer_shapes(model, check_type=False, strict_mode=False, data_prop=True)
    except Exception as exc:
        warnings.append(
            f"shape inference failed ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); "
            "dtypes and shapes are checked where the model declares them"
        )
        return model


def walk_model(
    path: Path, input_shapes: dict[str, list] | None = None, source: str = "input_shapes"
) -> WalkedGraph:
    from onnx import TensorProto

    path = Path(path)
    model = load_model_proto(path)
    external = any(t.data_location == TensorProto.EXTERNAL for t in model.graph.initializer)
    strip_large_weights(model)
    warnings: list[str] = []
    apply_input_shapes(model, input_shapes, source)
    model = infer_types(model, warnings)
    opsets = {("" if o.domain in STANDARD_DOMAINS else o.domain): o.version for o in model.opset_import}
    walker = _Walker(model, opsets)
    walker.walk_graph(model.graph, "", {}, opsets)
    initializers = {t.name for t in model.graph.initializer}
    inputs = [_info_from_value(vi) for vi in model.graph.input if vi.name not in initializers]
    outputs = [_info_from_value(vi) for vi in model.graph.output]
    return WalkedGraph(
        path, model.ir_version, opsets, inputs, outputs, walker.nodes, external, warnings, model
    )
