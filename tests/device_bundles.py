"""One signed bundle per loader runtime, each for a real device profile of its recipe (the one
shipping the oldest Python), plus tampered copies, for running the generated loaders under the
Pythons those devices ship (tests/test_loader_pythons.py). Plain functions; the session fixture
built from them, `device_bundles`, is in conftest.py."""

from __future__ import annotations

import json
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bundle_helpers import INT8_ADD_CONSTANT, make_int8_add_model, make_spec, read_members, write_members

# runtime -> (recipe, device, target): the device whose bundle each runtime's test builds
RUNTIME_DEVICES = {
    "tflite": ("edgetpu", "coral-devboard", "coral-devboard"),
    "tensorrt": ("tensorrt", "jetson-xavier-nx", "jetson-xavier-nx"),
    "onnxruntime": ("onnxruntime", "cpu", "cpu-fp32"),
    "coreml": ("coreml", "mac-m1", "mac"),
    "llama.cpp": ("gguf", "cpu", "laptop-q8"),
}


@dataclass
class DeviceBundle:
    runtime: str
    device: str
    archive: Path  # the signed bundle
    folder: Path  # the same bundle unpacked with plain tar
    edited_archive: Path  # manifest.json changed after signing (the signature must fail)
    flipped_folder: Path  # one byte of the artifact flipped (a checksum must fail)
    artifact: str  # the artifact's name inside the bundle


def _artifacts(runtime: str, work: Path, out: Path) -> tuple[dict, Path]:
    """(artifacts, selftest) of each runtime's bundle. Only the TFLite and ONNX models are real
    (they run); the others are placeholders of their file types: `verify` checks bytes, and
    TensorRT, Core ML and llama.cpp models are not run by these tests."""
    if runtime == "tflite":
        make_int8_add_model(out / "model_int8.tflite")
        x = np.array([[1.0, 1.0, -1.0, 0.0]], np.float32)
        np.savez(
            out / "selftest.npz",
            **{
                "input.x": x,
                "expected.y": x + INT8_ADD_CONSTANT,
                "atol": np.array(0.1),
                "rtol": np.array(0.0),
            },
        )
        return {"model_int8.tflite": out / "model_int8.tflite"}, out / "selftest.npz"
    if runtime == "tensorrt":
        (out / "builder_config.json").write_text(json.dumps({"precision": "fp16", "builder": {}}) + "\n")
        return {
            "model.onnx": work / "tiny.onnx",
            "builder_config.json": out / "builder_config.json",
        }, work / "selftest.npz"
    if runtime == "coreml":
        package = out / "Model.mlpackage"
        package.mkdir()
        (package / "Manifest.json").write_text("{}\n")
        return {"Model.mlpackage": package}, work / "selftest.npz"
    if runtime == "llama.cpp":
        (out / "model.gguf").write_bytes(b"GGUF" + bytes(60))
        return {"model.gguf": out / "model.gguf"}, work / "selftest.npz"
    return {"model.onnx": work / "tiny.onnx"}, work / "selftest.npz"


def make_device_bundle(runtime: str, work: Path, key, out: Path) -> DeviceBundle:
    from edgebuild.bundle import write_bundle
    from edgebuild.device_platform import bundle_requirements
    from edgebuild.recipes import load_recipe

    recipe, device, target = RUNTIME_DEVICES[runtime]
    out.mkdir(parents=True)
    artifacts, selftest = _artifacts(runtime, work, out)
    options = {"delegate": "edgetpu"} if recipe == "edgetpu" else {}
    spec = make_spec(
        work,
        target=target,
        device=device,
        recipe=recipe,
        runtime=runtime,
        artifacts=artifacts,
        selftest=selftest,
        runtime_options=options,
        requirements=bundle_requirements(load_recipe(recipe).devices[device]),
    )
    archive = write_bundle(spec, out / "bundles", key)
    root = archive.name[: -len(".tar.gz")]

    unpacked = out / "unpacked"
    with tarfile.open(archive) as tar:
        tar.extractall(unpacked, filter="data")

    members = read_members(archive)
    for info, data in members:
        if info.name == f"{root}/manifest.json":
            edited = data.replace(b'"latency_ms": 0.1', b'"latency_ms": 0.01')
            assert edited != data
            members[members.index((info, data))] = (info, edited)
    (out / "edited").mkdir()
    edited_archive = write_members(out / "edited" / archive.name, members)

    artifact = sorted(artifacts)[0]
    flipped = out / "flipped"
    shutil.copytree(unpacked, flipped)
    target_file = flipped / root / artifact
    if target_file.is_dir():
        artifact = artifact + "/Manifest.json"
        target_file = target_file / "Manifest.json"
    data = target_file.read_bytes()
    target_file.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    return DeviceBundle(runtime, device, archive, unpacked / root, edited_archive, flipped / root, artifact)
