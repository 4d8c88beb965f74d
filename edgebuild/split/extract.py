"""Both halves of a cut as ONNX files, and the check that server(device(x)) equals the model."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgebuild.split import wire
from edgebuild.split.model_graph import ModelGraph
from edgebuild.split.planner import Candidate


@dataclass
class Halves:
    device: object | None  # onnx.ModelProto; None when the server runs everything
    server: object | None  # None when the device runs everything
    sent: list[str]  # tensors the device sends, as the halves name them
    device_outputs: list[str]  # graph outputs the device computes itself (kept, not sent)
    original: dict[str, str]  # sent name -> the tensor's name in the source model


def wire_name(index: int, tensor: str) -> str:
    """A name for a cut tensor that is safe as an .npz key and a file name (exporters write names
    like '/features/features.0/Conv_output_0')."""
    return f"cut{index}_" + (re.sub(r"[^A-Za-z0-9_]+", "_", tensor).strip("_")[:60] or "tensor")


def _rename(graph, mapping: dict[str, str]) -> None:
    """Rename tensors everywhere in a graph, subgraphs included."""
    import onnx

    for value in list(graph.input) + list(graph.output) + list(graph.value_info):
        value.name = mapping.get(value.name, value.name)
    for node in graph.node:
        node.input[:] = [mapping.get(t, t) for t in node.input]
        node.output[:] = [mapping.get(t, t) for t in node.output]
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                _rename(attr.g, mapping)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for g in attr.graphs:
                    _rename(g, mapping)


def extract_halves(graph: ModelGraph, cut: Candidate) -> Halves:
    import onnx
    from onnx.utils import Extractor

    device_outputs = [o for o in graph.outputs if graph.producer.get(o) in cut.device_nodes]
    server_outputs = [o for o in graph.outputs if o not in device_outputs]
    # the Extractor takes cut tensors' types from value_info: give it every dynamic tensor's
    model = onnx.ModelProto()
    model.CopyFrom(graph.model)
    known = {v.name for v in list(model.graph.input) + list(model.graph.output)}
    del model.graph.value_info[:]
    for t in graph.tensors.values():
        if t.name not in known:
            model.graph.value_info.append(
                onnx.helper.make_tensor_value_info(
                    t.name, onnx.helper.np_dtype_to_tensor_dtype(np.dtype(t.dtype)), t.shape
                )
            )
    extractor = Extractor(model)
    device = server = None
    if cut.device_nodes:
        device = extractor.extract_model(list(graph.inputs), cut.tensors + device_outputs)
        device.graph.name = f"{graph.model.graph.name or 'model'}_device"
    if server_outputs:
        server = extractor.extract_model(list(cut.tensors), server_outputs)
        server.graph.name = f"{graph.model.graph.name or 'model'}_server"
    # graph inputs and outputs keep their names (the user's data uses them); intermediates get safe ones
    mapping = {
        t: wire_name(i, t)
        for i, t in enumerate(cut.tensors)
        if t not in graph.outputs and t not in graph.inputs
    }
    for half in (device, server):
        if half is not None:
            del half.graph.value_info[:]  # the halves are re-inferred by whoever loads them
            _rename(half.graph, mapping)
            onnx.checker.check_model(half)
    sent = [mapping.get(t, t) for t in cut.tensors]
    return Halves(device, server, sent, device_outputs, dict(zip(sent, cut.tensors)))


def save_halves(halves: Halves, out_dir: Path) -> dict[str, Path]:
    import onnx

    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for role, half in (("device", halves.device), ("server", halves.server)):
        if half is not None:
            path = out_dir / f"{role}.onnx"
            tmp = path.with_suffix(".onnx.tmp")
            onnx.save(half, str(tmp))
            tmp.replace(path)
            written[role] = path
    return written


def _session(model):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


class SplitRunner:
    """Runs the two halves in this process, passing the intermediate through the wire format."""

    def __init__(self, halves: Halves, intermediate: str = "fp32") -> None:
        self.halves, self.intermediate = halves, intermediate
        self.device = _session(halves.device) if halves.device is not None else None
        self.server = _session(halves.server) if halves.server is not None else None

    def device_part(self, feeds: dict) -> tuple[bytes, dict]:
        """(the frame the device sends, the outputs the device computed itself)."""
        if self.device is None:
            return wire.encode(feeds, self.intermediate), {}
        names = [o.name for o in self.device.get_outputs()]
        values = dict(zip(names, self.device.run(None, feeds)))
        sent = {n: values[n] for n in self.halves.sent}
        kept = {n: values[n] for n in self.halves.device_outputs}
        return (wire.encode(sent, self.intermediate) if sent else b""), kept

    def server_part(self, frame: bytes) -> dict:
        tensors = wire.decode(frame)
        names = [o.name for o in self.server.get_outputs()]
        feeds = {i.name: tensors[i.name] for i in self.server.get_inputs()}
        return dict(zip(names, self.server.run(None, feeds)))

    def run(self, feeds: dict) -> dict:
        frame, kept = self.device_part(feeds)
        if self.server is None:
            return kept
        return {**kept, **self.server_part(frame)}


def check_composition(
    graph: ModelGraph, halves: Halves, samples: dict, intermediate: str = "fp32", labels=None
) -> dict:
    """Run full model and halves (through the wire encoding) on every sample (batch of 1 at the
    declared shapes); per output: max abs error, min cosine, top-1 agreement for (1, C) outputs,
    and with labels the accuracy of both and its drop."""
    from edgebuild.metrics import compare

    full = _session(graph.model)
    runner = SplitRunner(halves, intermediate)
    names = list(graph.inputs)
    batch = graph.tensors[names[0]].shape[0] if graph.tensors[names[0]].shape else 1
    count = len(samples[names[0]]) // max(batch, 1)
    ref: dict[str, list] = {o: [] for o in graph.outputs}
    got: dict[str, list] = {o: [] for o in graph.outputs}
    for i in range(count):
        feeds = {n: samples[n][i * batch : (i + 1) * batch] for n in names}
        expected = dict(zip(graph.outputs, full.run(graph.outputs, feeds)))
        actual = runner.run(feeds)
        for o in graph.outputs:
            ref[o].append(np.asarray(expected[o]))
            got[o].append(np.asarray(actual[o]))
    result = {}
    for o in graph.outputs:
        r, g = np.concatenate(ref[o]), np.concatenate(got[o])
        classes = r.reshape(count, -1).shape[1]
        with_labels = labels is not None and batch == 1 and r.size == count * classes and len(labels) >= count
        m = compare(r.reshape(count, -1), g.reshape(count, -1), labels[:count] if with_labels else None)
        result[o] = {
            k: m[k]
            for k in (
                "samples",
                "max_abs_error",
                "cosine_min",
                "top1_agreement",
                "accuracy_source",
                "accuracy",
                "accuracy_drop",
            )
            if k in m
        }
    return result
