"""What the bundle tests build from and run (plain functions; the session fixtures built from them,
`work`, `keypair`, `other_keypair`, `bundle` and `unpacked`, are in conftest.py): a tiny real ONNX
model, its self-test made with onnxruntime, the bundle spec, tar members, and the generated loader
run in an environment that cannot see this checkout."""

from __future__ import annotations

import gzip
import io
import os
import subprocess
import sys
import tarfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from edgebuild.bundle import BundleSpec


def make_tiny_onnx(path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weight = rng.standard_normal((4, 3)).astype(np.float32)
    bias = rng.standard_normal(3).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W"], ["h"]),
            helper.make_node("Add", ["h", "b"], ["z"]),
            helper.make_node("Relu", ["z"], ["y"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
        [numpy_helper.from_array(weight, "W"), numpy_helper.from_array(bias, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def make_selftest(model: Path, path: Path, corrupt: bool = False) -> None:
    """Reference input and onnxruntime's output; `corrupt` shifts the expectation so the
    self-test must fail."""
    import onnxruntime as ort

    x = np.random.default_rng(1).standard_normal((1, 4)).astype(np.float32) + 1.0
    y = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert np.any(y > 0), "the reference input must give a non-trivial output"
    if corrupt:
        y = y + 0.5
    np.savez(path, **{"input.x": x, "expected.y": y, "atol": np.array(1e-5), "rtol": np.array(1e-4)})


INT8_ADD_CONSTANT = np.array([0.5, -1.0, 1.5, -2.0], np.float32)  # exactly representable at scale 0.05


def make_int8_add_model(path: Path) -> None:
    """y = x + INT8_ADD_CONSTANT with int8 tensors: x scale 0.05, y scale 0.1 zero point -3."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    def tensor(name, buffer, scale, zero_point):
        quant = schema.QuantizationParametersT()
        quant.scale, quant.zeroPoint = [scale], [zero_point]
        t = schema.TensorT()
        t.name, t.shape, t.type, t.buffer, t.quantization = (
            name,
            [1, 4],
            schema.TensorType.INT8,
            buffer,
            quant,
        )
        return t

    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.ADD
    code.version = 2
    constant = schema.BufferT()
    constant.data = list(np.round(INT8_ADD_CONSTANT / 0.05).astype(np.int8).view(np.uint8))
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0, 1], [2]
    op.builtinOptionsType, op.builtinOptions = schema.BuiltinOptions.AddOptions, schema.AddOptionsT()
    graph = schema.SubGraphT()
    graph.tensors = [tensor("x", 1, 0.05, 0), tensor("c", 2, 0.05, 0), tensor("y", 3, 0.1, -3)]
    graph.operators, graph.inputs, graph.outputs = [op], [0], [2]
    model = schema.ModelT()
    model.version, model.operatorCodes, model.subgraphs = 3, [code], [graph]
    model.buffers = [schema.BufferT(), schema.BufferT(), constant, schema.BufferT()]
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path.write_bytes(builder.Output())


def make_spec(work: Path, version: str = "1.0.0", **changes) -> BundleSpec:
    spec = BundleSpec(
        project="demo",
        version=version,
        target="cpu-fp32",
        device="cpu",
        recipe="onnxruntime",
        runtime="onnxruntime",
        artifacts={"model.onnx": work / "tiny.onnx"},
        io={
            "inputs": [{"name": "x", "shape": [1, 4], "dtype": "float32", "layout": "NC"}],
            "outputs": [
                {
                    "name": "y",
                    "shape": [1, 3],
                    "dtype": "float32",
                    "quantization": {"scale": 0.05, "zero_point": 3},
                }
            ],
        },
        selftest=work / "selftest.npz",
        coverage={"supported": 3, "total": 3, "unsupported": [], "nodes": [{"op": "MatMul"}]},
        metrics={"latency_ms": 0.1, "max_abs_diff": 0.0},
        provenance={
            "source_sha256": "ab" * 32,
            "steps": {"onnx.check": "1"},
            "toolchain": {"onnxruntime": "1.x"},
            "edgebuild": "0.1.0",
        },
        runtime_options={"providers": ["CUDAExecutionProvider", "CPUExecutionProvider"]},
    )
    return replace(spec, **changes)


def read_members(archive: Path) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    with tarfile.open(archive) as tar:
        return [(m, tar.extractfile(m).read() if m.isreg() else None) for m in tar.getmembers()]


def write_members(archive: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(archive, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return archive


def isolated_env() -> dict[str, str]:
    """The environment without PYTHONPATH, so a loader cannot lean on an edgebuild checkout."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}


def run_loader(
    loader: Path, *args: str, python: str = sys.executable, env: dict | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [python, str(loader), *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=str(loader.parent),
        env=env if env is not None else isolated_env(),
    )


# Hostile archives that cost little to store and much to inflate (the tamper matrix and
# benchmarks/bundle_attacks.py). `members` are a bundle's (TarInfo, bytes) as read_members gives.
END = b"\0" * 10240  # end-of-archive marker padded to a whole tar record


def gz(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=1, mtime=0)


ZEROS_1MIB = gz(b"\0" * (1 << 20))  # gzip members concatenate: n copies inflate to n MiB


def tar_prefix(members) -> bytes:
    """The uncompressed tar stream of `members`, without the end-of-archive marker."""
    buf = io.BytesIO()
    tar = tarfile.TarFile(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT)
    for info, data in members:
        tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()  # not closed: close() would append the end marker


def tar_header(name: str, size: int, kind=tarfile.REGTYPE) -> bytes:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.mode = kind, size, 0o644
    return info.tobuf(format=tarfile.USTAR_FORMAT)


def _root(members) -> str:
    return members[0][0].name.split("/")[0]


def _header_then_zeros(members, header: bytes, mib: int) -> bytes:
    return gz(tar_prefix(members) + header) + ZEROS_1MIB * mib + gz(END)


def unlisted_entry(members, mib: int) -> bytes:
    """The bundle plus an unlisted entry zeros.bin of `mib` MiB of zeros."""
    return _header_then_zeros(members, tar_header(f"{_root(members)}/zeros.bin", mib << 20), mib)


def pax_header(members, mib: int) -> bytes:
    """The bundle plus a PAX extended header `mib` MiB long."""
    return _header_then_zeros(members, tar_header("././@PaxHeader", mib << 20, tarfile.XHDTYPE), mib)


def gnu_long_name(members, mib: int) -> bytes:
    """The bundle plus a GNU long-name header `mib` MiB long."""
    return _header_then_zeros(members, tar_header("././@LongLink", mib << 20, tarfile.GNUTYPE_LONGNAME), mib)


def after_end(members, mib: int) -> bytes:
    """The intact bundle followed by `mib` MiB of zeros after its end-of-archive marker."""
    return gz(tar_prefix(members) + END) + ZEROS_1MIB * mib


def deep_path(members, depth: int) -> bytes:
    """The bundle plus a one-byte file `depth` folders deep."""
    info = tarfile.TarInfo(_root(members) + "/" + "a/" * depth + "x.bin")
    info.size = 1
    return gz(tar_prefix(list(members) + [(info, b"x")]) + END)
