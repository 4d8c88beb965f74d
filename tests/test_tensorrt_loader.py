"""The generated TensorRT loader's first-run flow on a deferred bundle: find the ONNX and
builder_config.json, build the engine once, keep it (and its timing cache) beside the bundle,
reuse it afterwards, bind I/O from the engine's own metadata, and pass the self-test.

TensorRT and a GPU cannot exist in this workplace (facts/tensorrt.md), so the loader runs here
against TEST DOUBLES: a `tensorrt` runtime whose "engine" executes the bundled ONNX with
onnxruntime, and a CUDA driver whose "device memory" is host memory. The real runtime and driver
are exercised by tests/test_tensorrt_gpu.py where TensorRT and a GPU exist. Everything else here
is real: the bundle is signed and written by edgebuild, the ONNX and self-test come from the
tensorrt steps."""

from __future__ import annotations

import ctypes
import importlib.util
import sys
import tarfile
import types
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

HERE = Path(__file__).resolve().parent


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class FakeCuda:
    """Double of the loader's CudaDriver: pointers index host buffers."""

    memory: dict[int, bytearray] = {}
    compute = "8.7"

    def __init__(self):
        self.stream = ctypes.c_void_p()
        self._next = 1 + max(self.memory, default=0)

    def compute_capability(self):
        return self.compute

    def alloc(self, nbytes):
        pointer, self._next = self._next, self._next + 1
        self.memory[pointer] = bytearray(max(int(nbytes), 1))
        return pointer

    def free(self, pointer):
        del self.memory[pointer]

    def to_device(self, pointer, array):
        self.memory[pointer][: array.nbytes] = array.tobytes()

    def to_host(self, array, pointer):
        array[...] = np.frombuffer(bytes(self.memory[pointer][: array.nbytes]), dtype=array.dtype).reshape(
            array.shape
        )

    def synchronize(self):
        pass


def fake_tensorrt_runtime() -> types.ModuleType:
    """Double of the TensorRT runtime API the loader uses; an engine is b"FAKE:" + ONNX bytes."""
    trt = types.ModuleType("tensorrt")
    trt.__version__ = "10.3.0.30"
    trt.Logger = type("Logger", (), {"WARNING": 2, "__init__": lambda self, level=2: None})
    trt.TensorIOMode = type("TensorIOMode", (), {"INPUT": "input", "OUTPUT": "output"})
    trt.nptype = lambda dtype: np.dtype(dtype).type

    class Context:
        def __init__(self, engine):
            self.engine, self.shapes, self.addresses = engine, {}, {}

        def set_input_shape(self, name, shape):
            self.shapes[name] = tuple(shape)
            return True

        def set_tensor_address(self, name, pointer):
            self.addresses[name] = pointer

        def _run(self):
            feeds = {}
            for name in self.engine.input_names:
                dtype, shape = np.dtype(self.engine.dtypes[name]), self.shapes[name]
                raw = bytes(FakeCuda.memory[self.addresses[name]][: int(np.prod(shape)) * dtype.itemsize])
                feeds[name] = np.frombuffer(raw, dtype=dtype).reshape(shape)
            return dict(
                zip(self.engine.output_names, self.engine.session.run(self.engine.output_names, feeds))
            )

        def get_tensor_shape(self, name):
            return self._run()[name].shape

        def execute_async_v3(self, stream):
            for name, value in self._run().items():
                FakeCuda.memory[self.addresses[name]][: value.nbytes] = np.ascontiguousarray(value).tobytes()
            return True

    class Engine:
        def __init__(self, onnx_bytes):
            self.session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
            self.input_names = [i.name for i in self.session.get_inputs()]
            self.output_names = [o.name for o in self.session.get_outputs()]
            self.dtypes = {
                **{i.name: "float32" for i in self.session.get_inputs()},
                **{o.name: "float32" for o in self.session.get_outputs()},
            }
            self.num_io_tensors = len(self.input_names) + len(self.output_names)

        def get_tensor_name(self, index):
            return (self.input_names + self.output_names)[index]

        def get_tensor_mode(self, name):
            return "input" if name in self.input_names else "output"

        def get_tensor_dtype(self, name):
            return self.dtypes[name]

        def create_execution_context(self):
            return Context(self)

    class Runtime:
        def __init__(self, logger):
            self.engine_host_code_allowed = False

        def deserialize_cuda_engine(self, data):
            data = bytes(data)
            return Engine(data[5:]) if data.startswith(b"FAKE:") else None

    trt.Runtime = Runtime
    return trt


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    """Signed int8 bundles made by the real steps and bundle writer, unpacked: a deferred one,
    and one whose bundled engine this runtime cannot deserialize."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from edgebuild.bundle.spec import BundleSpec
    from edgebuild.bundle.writer import write_bundle

    steps = _load(HERE / "test_tensorrt_steps.py", "tensorrt_steps_for_loader")
    work = tmp_path_factory.mktemp("trt-loader")
    source = steps.small_cnn(work / "cnn.onnx")
    calibration = work / "calibration.npz"
    np.savez(calibration, input=np.random.default_rng(1).standard_normal((48, 1, 8, 8)).astype(np.float32))
    profile = steps.PROFILE
    steps.run_step(
        "tensorrt.prepare", work / "prepare", {"model": source, "calibration": calibration}, profiles=profile
    )
    prepared = work / "prepare" / "model.onnx"
    meta = steps.run_step(
        "tensorrt.quantize",
        work / "lower",
        {"model": prepared, "calibration": calibration},
        precision="int8",
        profiles=profile,
    )
    lowered = work / "lower" / "model.onnx"
    steps.run_step(
        "tensorrt.selftest",
        work / "selftest",
        {"model": prepared, "lowered": lowered, "calibration": calibration},
        precision="int8",
        profiles=profile,
    )
    steps.run_step(
        "tensorrt.config",
        work / "config",
        {"model": lowered},
        **steps.ORIN,
        precision="int8",
        profiles=profile,
    )
    artifacts = {"cnn_int8.onnx": lowered, "builder_config.json": work / "config" / "builder_config.json"}
    stale_engine = work / "stale.engine"
    stale_engine.write_bytes(b"an engine from another TensorRT version")
    folders = {}
    for target, extra in (("orin-int8", {}), ("orin-int8-stale", {"cnn_int8.engine": stale_engine})):
        spec = BundleSpec(
            project="demo",
            version="1.0.0",
            target=target,
            device="jetson-orin-nano",
            recipe="tensorrt",
            runtime="tensorrt",
            artifacts={**artifacts, **extra},
            io=meta["io"],
            selftest=work / "selftest" / "selftest.npz",
            status="built" if extra else "deferred",
        )
        archive = write_bundle(spec, work / "bundles", Ed25519PrivateKey.generate())
        with tarfile.open(archive) as tar:
            tar.extractall(work / "unpacked", filter="data")
        folders[target] = work / "unpacked" / spec.folder_name
    return folders


@pytest.fixture(scope="module")
def bundle(bundles):
    return bundles["orin-int8"]


@pytest.fixture
def loader(bundle, monkeypatch, tmp_path):
    """The bundle's own loader.py with the doubles installed; counts first-run builds."""
    module = _load(bundle / "loader.py", f"bundle_loader_{id(tmp_path)}")
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt_runtime())
    monkeypatch.setattr(module, "CudaDriver", FakeCuda)
    monkeypatch.setattr(FakeCuda, "compute", "8.7")
    builds = []

    def build_engine(trt, onnx_path, config_dict, timing_cache=b"", logger=None):
        builds.append((Path(onnx_path).name, config_dict["precision"], timing_cache))
        return b"FAKE:" + Path(onnx_path).read_bytes(), timing_cache + b"t"

    monkeypatch.setattr(module, "build_engine", build_engine)
    monkeypatch.setenv(module.ENGINE_CACHE_ENV, str(tmp_path / "cache"))
    module.builds, module.cache = builds, tmp_path / "cache"
    return module


def test_first_run_builds_stores_and_then_reuses_the_engine(loader, bundle):
    passed, report = loader.load(bundle).selftest()
    assert passed, report
    assert loader.builds == [("cnn_int8.onnx", "int8", b"")]
    engines = list(loader.cache.glob("*.engine"))
    assert len(engines) == 1 and "trt10.3.0.30-sm87" in engines[0].name
    assert (loader.cache / "timing-trt10.3.0.30-sm87.cache").read_bytes() == b"t"
    passed, _ = loader.load(bundle).selftest()
    assert passed and len(loader.builds) == 1  # reused, not rebuilt


def test_a_changed_builder_config_is_a_different_engine(loader, bundle, tmp_path):
    assert loader.load(bundle).selftest()[0]
    config = bundle / "builder_config.json"
    original = config.read_bytes()
    try:
        config.write_bytes(original.replace(b'"optimization_level": 3', b'"optimization_level": 4'))
        assert loader.load(bundle, verify=False).selftest()[0]
    finally:
        config.write_bytes(original)
    assert len(loader.builds) == 2 and len(list(loader.cache.glob("*.engine"))) == 2
    # the second build started from the timing cache the first one left
    assert loader.builds[1][2] == b"t"


def test_predict_binds_from_engine_metadata(loader, bundle):
    model = loader.load(bundle)
    batch = np.random.default_rng(3).standard_normal((3, 1, 8, 8)).astype(np.float32)
    outputs = model.predict({"input": batch})
    reference = ort.InferenceSession(str(bundle / "cnn_int8.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(outputs["logits"], reference.run(None, {"input": batch})[0], rtol=1e-6)
    assert FakeCuda.memory == {}  # every device buffer was freed
    with pytest.raises(KeyError, match="missing model input 'input'"):
        model.predict({"image": batch})


def test_wrong_gpu_class_is_refused(loader, bundle, monkeypatch):
    monkeypatch.setattr(FakeCuda, "compute", "9.0")
    with pytest.raises(loader.RuntimeUnavailable, match="targets compute capability 8.7, this GPU has 9.0"):
        loader.load(bundle).predict({})


def test_an_engine_this_runtime_cannot_load_is_rebuilt_from_onnx(loader, bundles, capsys):
    passed, report = loader.load(bundles["orin-int8-stale"]).selftest()
    assert passed, report
    assert "the bundled engine does not load with TensorRT 10.3.0.30 here" in capsys.readouterr().err
    assert len(loader.builds) == 1
