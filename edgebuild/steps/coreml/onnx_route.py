"""ONNX -> PyTorch, the first half of the Core ML route (onnx2torch, then torch.jit.trace).

Why this route: coremltools 9 has no ONNX frontend. Converting through onnx2torch and tracing
converted every CNN and small transformer we measured, and onnx2torch modules agreed with
onnxruntime to 2.4e-7; a MIL program built directly from ONNX would mean re-implementing opset
variants, dynamic shapes and int64 handling that onnx2torch and coremltools already have.
Tracing (not torch.export) because onnx2torch graphs trip export's data-dependent guards on
constant Reshape, and a Core ML package has static shapes anyway.

Nodes are renamed `n<index>_<op>` before conversion so that any later failure (onnx2torch,
tracing, coremltools) can be traced back to the user's ONNX node by its original name.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgebuild.steps.base import StepFailed

from . import constant_folding, inference_rewrites, torchvision_standin

NODE_TAG = re.compile(r"n(\d+)_")


@dataclass
class TensorInfo:
    name: str
    shape: list[int]
    dtype: str  # numpy dtype name


@dataclass
class PreparedModel:
    model: Any  # onnx.ModelProto with static input shapes and tagged node names
    inputs: list[TensorInfo]
    output_names: list[str]
    node_names: list[str]  # original node names (op type when unnamed), by index
    node_ops: list[str]

    def describe_node(self, index: int) -> str:
        return f"{self.node_ops[index]} (node '{self.node_names[index]}')"

    def node_from_text(self, text: str) -> str | None:
        """The first tagged node mentioned in an error or scope string, described for the user."""
        for match in NODE_TAG.finditer(text):
            index = int(match.group(1))
            if index < len(self.node_names):
                return self.describe_node(index)
        return None


def _numpy_dtype(elem_type: int) -> str:
    import onnx.helper

    return onnx.helper.tensor_dtype_to_np_dtype(elem_type).name


def _static_shape(value_info, wanted: list[int] | None) -> list[int]:
    dims = value_info.type.tensor_type.shape.dim
    name = value_info.name
    if wanted is not None:
        if len(wanted) != len(dims):
            raise StepFailed(
                f"parameter 'input_shapes.{name}' = {wanted}: the model's input has rank {len(dims)}"
            )
        for axis, (dim, size) in enumerate(zip(dims, wanted)):
            if (
                dim.HasField("dim_value") and dim.dim_value > 0 and dim.dim_value != size
            ):  # <= 0: dynamic (Paddle's -1)
                raise StepFailed(
                    f"parameter 'input_shapes.{name}' = {wanted}: axis {axis} is fixed to {dim.dim_value} in the model"
                )
        return list(wanted)
    shape = []
    for axis, dim in enumerate(dims):
        if dim.HasField("dim_value") and dim.dim_value > 0:
            shape.append(dim.dim_value)
        elif axis == 0:
            shape.append(1)  # a dynamic batch axis: Core ML packages here are built for batch 1
        else:
            label = f"'{dim.dim_param}'" if dim.dim_param else "unnamed"
            raise StepFailed(
                f"model input '{name}' has dynamic axis {axis} ({label}): "
                f"set input_shapes = {{ {name} = [...] }} for this model in targets.toml"
            )
    return shape


def prepare(path: Path, input_shapes: dict[str, list[int]]) -> PreparedModel:
    """Load the ONNX model, fix its input shapes and tag its nodes; no conversion yet."""
    import onnx

    try:
        model = onnx.load(str(path))
    except Exception as exc:
        raise StepFailed(f"{path.name}: not a readable ONNX model ({exc})") from None
    graph = model.graph
    initializers = {init.name for init in graph.initializer}
    graph_inputs = [vi for vi in graph.input if vi.name not in initializers]
    unknown = sorted(set(input_shapes) - {vi.name for vi in graph_inputs})
    if unknown:
        raise StepFailed(
            f"parameter 'input_shapes' names '{unknown[0]}', which is not an input of {path.name} "
            f"(inputs: {', '.join(vi.name for vi in graph_inputs)})"
        )
    inputs = []
    for vi in graph_inputs:
        shape = _static_shape(vi, input_shapes.get(vi.name))
        vi.type.tensor_type.shape.ClearField("dim")
        for size in shape:
            vi.type.tensor_type.shape.dim.add().dim_value = size
        inputs.append(TensorInfo(vi.name, shape, _numpy_dtype(vi.type.tensor_type.elem_type)))

    node_names, node_ops = [], []
    for index, node in enumerate(graph.node):
        node_names.append(node.name or node.op_type)
        node_ops.append(node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}")
        node.name = f"n{index}_{node.op_type}"
        _fill_trap_defaults(node)
    inference_rewrites.drop_inference_dropout(model)
    constant_folding.fold(model)
    return PreparedModel(model, inputs, [o.name for o in graph.output], node_names, node_ops)


def _fill_trap_defaults(node) -> None:
    """Write out ONNX attribute defaults that onnx2torch 1.5.15 reads wrongly."""
    import onnx.helper

    present = {attr.name for attr in node.attribute}
    if node.op_type == "CumSum" and "reverse" not in present:
        # onnx2torch treats a missing `reverse` as 1; ONNX says 0
        node.attribute.append(onnx.helper.make_attribute("reverse", 0))


def import_onnx2torch():
    if "onnx2torch" in sys.modules:
        return sys.modules["onnx2torch"]
    installed = torchvision_standin.install_if_missing()
    try:
        import onnx2torch
    finally:
        if installed:
            torchvision_standin.remove()
    return onnx2torch


def unconvertible_nodes(prepared: PreparedModel) -> list[str]:
    """Nodes onnx2torch cannot turn into torch modules, each described with the reason."""
    import_onnx2torch()
    from onnx2torch.node_converters import get_converter
    from onnx2torch.onnx_graph import OnnxGraph
    from onnx2torch.utils.safe_shape_inference import safe_shape_inference

    opsets = {o.domain or "": o.version for o in prepared.model.opset_import}
    opsets.setdefault("ai.onnx", opsets.get("", 0))
    graph = OnnxGraph(
        safe_shape_inference(prepared.model).graph
    )  # converters read inferred shapes, as in onnx2torch.convert
    problems = []
    for onnx_node in graph.nodes.values():
        index = int(NODE_TAG.match(onnx_node.name).group(1))
        what = prepared.describe_node(index)
        if (
            onnx_node.operation_type in torchvision_standin.OPS_NEEDING_TORCHVISION
            and torchvision_standin.is_standin_active()
        ):
            problems.append(f"{what}: needs torchvision, which this toolchain leaves out")
            continue
        try:
            converter = get_converter(
                domain=onnx_node.domain,
                operation_type=onnx_node.operation_type,
                version=opsets.get(onnx_node.domain, opsets[""]),
            )
        except NotImplementedError:
            problems.append(
                f"{what}: no onnx2torch converter for opset {opsets.get(onnx_node.domain, opsets[''])}"
            )
            continue
        try:
            converter(onnx_node, graph)
        except Exception as exc:  # converters reject attribute values they do not handle
            problems.append(f"{what}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    return problems


def example_inputs(prepared: PreparedModel, seed: int = 0) -> dict[str, Any]:
    import numpy as np

    rng = np.random.default_rng(seed)
    arrays = {}
    for info in prepared.inputs:
        if np.issubdtype(np.dtype(info.dtype), np.floating):
            arrays[info.name] = rng.standard_normal(info.shape).astype(info.dtype)
        elif info.dtype == "bool":
            arrays[info.name] = np.zeros(info.shape, dtype=bool)
        else:
            arrays[info.name] = np.zeros(info.shape, dtype=info.dtype)
    return arrays


def to_torch(prepared: PreparedModel):
    """The onnx2torch fx.GraphModule, in eval mode; StepFailed naming the node when it cannot be built."""
    problems = unconvertible_nodes(prepared)
    if problems:
        more = f" (and {len(problems) - 1} more: {'; '.join(problems[1:4])})" if len(problems) > 1 else ""
        raise StepFailed(f"Core ML route cannot convert ONNX op {problems[0]}{more}")
    onnx2torch = import_onnx2torch()
    try:
        module = onnx2torch.convert(prepared.model)
    except Exception as exc:
        where = prepared.node_from_text(str(exc)) or "the model"
        raise StepFailed(f"onnx2torch failed on {where}: {str(exc).splitlines()[0]}") from None
    return module.eval()


def _locate_runtime_failure(module, args) -> str | None:
    """Re-run the fx graph node by node to find the ONNX node whose module raised."""
    import torch.fx

    class Locator(torch.fx.Interpreter):
        failing = None

        def run_node(self, n):
            try:
                return super().run_node(n)
            except Exception:
                if Locator.failing is None:
                    Locator.failing = str(n.target)
                raise

    try:
        Locator(module).run(*args)
    except Exception:
        pass
    return Locator.failing


def trace(prepared: PreparedModel, module, inputs: dict[str, Any]):
    """torch.jit.trace of the onnx2torch module on the given example inputs (static shapes)."""
    import warnings

    import torch

    args = tuple(torch.from_numpy(inputs[info.name]) for info in prepared.inputs)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # TracerWarnings about constants are expected: shapes are static
        try:
            return torch.jit.trace(module, args, check_trace=False)
        except Exception as exc:
            target = _locate_runtime_failure(module, args)
            where = prepared.node_from_text(target or "") or "the model"
            raise StepFailed(
                f"Core ML route cannot run ONNX op {where} in PyTorch: {str(exc).splitlines()[0]}"
            ) from None


def run_torch(prepared: PreparedModel, module, inputs: dict[str, Any]) -> list[Any]:
    """Outputs of a torch module (fx or traced) as numpy arrays, in ONNX output order."""
    import torch

    args = tuple(torch.from_numpy(inputs[info.name]) for info in prepared.inputs)
    with torch.no_grad():
        result = module(*args)
    if isinstance(result, torch.Tensor):
        result = [result]
    return [t.detach().cpu().numpy() for t in result]
