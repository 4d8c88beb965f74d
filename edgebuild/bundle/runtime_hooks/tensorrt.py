# ruff: noqa: F821  (reads the loader's BundleRejected, RuntimeUnavailable, and build_engine and
# EngineBuildError of edgebuild/steps/tensorrt/engine_builder.py, pasted just before this)
# Runtime hooks of TensorRT bundles: CUDA through ctypes on libcuda, the bundled engine or one
# built on first run (cached outside the verified folder), and an engine session.
#
# Copied verbatim into the loader.py of every TensorRT bundle (templates/loader_tensorrt.py.j2 pastes it
# as the runtime hooks of _common.py.j2): runtime_load imports the runtime, never the module
# top, so `verify`, `install` and `rollback` work without it. Python 3.7.
import ctypes
import ctypes.util
import hashlib
import json
import os
import sys
from pathlib import Path

RUNTIME = "tensorrt"
RUNTIME_REQUIREMENT = "tensorrt (JetPack on Jetson; NVIDIA's tensorrt wheel or packages elsewhere)"
RUNTIME_USED = None  # set by runtime_load: the TensorRT version, the GPU, and where the engine came from
# Where engines built on first run are kept; default: beside the bundle folder (see engine_cache_dir).
ENGINE_CACHE_ENV = "EDGEBUILD_TENSORRT_CACHE"


class CudaDriver(object):
    """The few CUDA driver calls the loader needs (memory, copies, a stream), through ctypes on
    libcuda, which every NVIDIA driver installs (Jetson included): no CUDA Python package needed.
    Uses the primary context of GPU 0, the one TensorRT's CUDA runtime uses too."""

    def __init__(self):
        lib = None
        for name in ("libcuda.so.1", ctypes.util.find_library("cuda"), "nvcuda.dll"):
            if name:
                try:
                    lib = ctypes.CDLL(name)
                    break
                except OSError:
                    continue
        if lib is None:
            raise RuntimeUnavailable("no NVIDIA driver on this host (libcuda not found)")
        self.lib = lib
        lib.cuMemAlloc_v2.argtypes = [ctypes.POINTER(ctypes.c_uint64), ctypes.c_size_t]
        lib.cuMemFree_v2.argtypes = [ctypes.c_uint64]
        lib.cuMemcpyHtoD_v2.argtypes = [ctypes.c_uint64, ctypes.c_void_p, ctypes.c_size_t]
        lib.cuMemcpyDtoH_v2.argtypes = [ctypes.c_void_p, ctypes.c_uint64, ctypes.c_size_t]
        lib.cuStreamCreate.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_uint]
        lib.cuStreamSynchronize.argtypes = [ctypes.c_void_p]
        lib.cuDevicePrimaryCtxRetain.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_int]
        lib.cuCtxSetCurrent.argtypes = [ctypes.c_void_p]
        if lib.cuInit(0) != 0:
            raise RuntimeUnavailable("the NVIDIA driver found no usable GPU (cuInit failed)")
        self.device = ctypes.c_int()
        self._check(lib.cuDeviceGet(ctypes.byref(self.device), 0), "cuDeviceGet")
        context = ctypes.c_void_p()
        self._check(
            lib.cuDevicePrimaryCtxRetain(ctypes.byref(context), self.device), "cuDevicePrimaryCtxRetain"
        )
        self._check(lib.cuCtxSetCurrent(context), "cuCtxSetCurrent")
        self.stream = ctypes.c_void_p()
        self._check(lib.cuStreamCreate(ctypes.byref(self.stream), 0), "cuStreamCreate")

    def _check(self, status, call):
        if status != 0:
            raise RuntimeError("CUDA driver call %s failed with error %d" % (call, status))

    def compute_capability(self):
        major, minor = ctypes.c_int(), ctypes.c_int()
        self._check(
            self.lib.cuDeviceGetAttribute(ctypes.byref(major), 75, self.device), "cuDeviceGetAttribute"
        )
        self._check(
            self.lib.cuDeviceGetAttribute(ctypes.byref(minor), 76, self.device), "cuDeviceGetAttribute"
        )
        return "%d.%d" % (major.value, minor.value)

    def alloc(self, nbytes):
        pointer = ctypes.c_uint64()
        self._check(self.lib.cuMemAlloc_v2(ctypes.byref(pointer), max(int(nbytes), 1)), "cuMemAlloc")
        return pointer.value

    def free(self, pointer):
        self.lib.cuMemFree_v2(pointer)

    def to_device(self, pointer, array):
        self._check(self.lib.cuMemcpyHtoD_v2(pointer, array.ctypes.data, array.nbytes), "cuMemcpyHtoD")

    def to_host(self, array, pointer):
        self._check(self.lib.cuMemcpyDtoH_v2(array.ctypes.data, pointer, array.nbytes), "cuMemcpyDtoH")

    def synchronize(self):
        self._check(self.lib.cuStreamSynchronize(self.stream), "cuStreamSynchronize")


# ------------------------------------------------------------------ engine files
def _artifact(folder, manifest, suffix):
    for name in manifest.get("artifacts") or []:
        if name.endswith(suffix):
            return folder / name
    return None


def engine_cache_dir(folder):
    """Engines built here live outside the verified bundle folder (which must hold exactly what
    its manifest lists): $EDGEBUILD_TENSORRT_CACHE, else <install root>/tensorrt-cache for bundles
    installed with `loader.py install` (kept across updates and staging), else <folder>.tensorrt/."""
    if os.environ.get(ENGINE_CACHE_ENV):
        return Path(os.environ[ENGINE_CACHE_ENV])
    folder = Path(folder).resolve()
    if folder.parent.name == "versions":
        return folder.parent.parent / "tensorrt-cache"
    if folder.parent.parent.name == "staging" and (folder.parent.parent.parent / "versions").is_dir():
        return folder.parent.parent.parent / "tensorrt-cache"
    return folder.parent / (folder.name + ".tensorrt")


def _write_atomically(path, data):
    tmp = path.with_name(".%s.%d.tmp" % (path.name, os.getpid()))
    tmp.write_bytes(data)
    os.replace(str(tmp), str(path))


def _engine_from_onnx(trt, runtime, folder, manifest, config_dict, compute_capability, log):
    """The engine for this ONNX + builder configuration on this GPU and TensorRT version: from
    the cache beside the bundle, or built now (minutes on a small device) and cached."""
    onnx_path = _artifact(folder, manifest, ".onnx")
    if onnx_path is None:
        raise RuntimeUnavailable("bundle has neither a usable engine nor the ONNX model to build one")
    onnx_sha = hashlib.sha256(onnx_path.read_bytes()).hexdigest()
    if config_dict.get("onnx_sha256") not in (None, onnx_sha):
        raise BundleRejected("builder_config.json was made for another ONNX model (sha256 differs)")
    config_sha = hashlib.sha256(json.dumps(config_dict, sort_keys=True).encode("utf-8")).hexdigest()
    tag = "trt%s-sm%s" % (trt.__version__, compute_capability.replace(".", ""))
    cache = engine_cache_dir(folder)
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RuntimeUnavailable(
            "cannot create the engine cache %s (%s); set %s to a writable folder"
            % (cache, exc.strerror, ENGINE_CACHE_ENV)
        ) from None
    engine_path = cache / ("%s-%s-%s.engine" % (onnx_sha[:16], config_sha[:12], tag))
    timing_path = cache / ("timing-%s.cache" % tag)  # one per (device class, TensorRT version)
    if engine_path.is_file():
        engine = runtime.deserialize_cuda_engine(engine_path.read_bytes())
        if engine is not None:
            return engine
        log("cached engine %s does not load; rebuilding" % engine_path)
    log(
        "building the TensorRT %s engine for %s on first run (compute capability %s); this takes a while"
        % (trt.__version__, onnx_path.name, compute_capability)
    )
    timing = timing_path.read_bytes() if timing_path.is_file() else b""
    try:
        engine_bytes, timing = build_engine(trt, onnx_path, config_dict, timing)
    except EngineBuildError as exc:
        raise RuntimeUnavailable(str(exc)) from None
    _write_atomically(engine_path, engine_bytes)
    _write_atomically(timing_path, timing)
    log("engine stored at %s" % engine_path)
    return runtime.deserialize_cuda_engine(engine_bytes)


def runtime_load(folder, manifest, options):
    try:
        import tensorrt as trt
    except ImportError:
        raise RuntimeUnavailable("TensorRT is not installed: %s" % RUNTIME_REQUIREMENT) from None
    cuda = CudaDriver()
    compute_capability = cuda.compute_capability()
    config_path = _artifact(folder, manifest, "builder_config.json")
    config_dict = json.loads(config_path.read_text(encoding="utf-8")) if config_path else {"builder": {}}
    wanted = config_dict.get("compute_capability")
    hardware = config_dict["builder"].get("hardware_compatibility", "none")
    if wanted and wanted != compute_capability and hardware == "none":
        raise RuntimeUnavailable(
            "this bundle targets compute capability %s, this GPU has %s" % (wanted, compute_capability)
        )
    logger = trt.Logger(trt.Logger.WARNING)
    runtime = trt.Runtime(logger)
    if config_dict["builder"].get("version_compatible"):
        runtime.engine_host_code_allowed = True  # version-compatible engines carry their lean runtime
    log = lambda line: sys.stderr.write(line + "\n")
    engine = None
    bundled = _artifact(folder, manifest, ".engine")
    if bundled is not None:
        engine = runtime.deserialize_cuda_engine(bundled.read_bytes())
        if engine is None:
            log(
                "the bundled engine does not load with TensorRT %s here; building from the ONNX model"
                % trt.__version__
            )
    engine_from_bundle = engine is not None
    if engine is None:
        engine = _engine_from_onnx(trt, runtime, folder, manifest, config_dict, compute_capability, log)
    if engine is None:
        raise RuntimeUnavailable("TensorRT %s could not deserialize the engine" % trt.__version__)
    global RUNTIME_USED
    RUNTIME_USED = "tensorrt %s on a GPU of compute capability %s (%s engine)" % (
        trt.__version__,
        compute_capability,
        "bundled" if engine_from_bundle else "locally built",
    )
    return EngineSession(trt, engine, cuda)


class EngineSession(object):
    """Runs an engine: bindings come from the engine's own I/O tensor metadata."""

    def __init__(self, trt, engine, cuda):
        self.trt, self.engine, self.cuda = trt, engine, cuda
        self.context = engine.create_execution_context()
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        self.inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if engine.get_tensor_mode(n) != trt.TensorIOMode.INPUT]

    def run(self, feeds):
        import numpy as np

        trt, cuda = self.trt, self.cuda
        allocated = []
        try:
            for name in self.inputs:
                if name not in feeds:
                    raise KeyError("missing model input %r (inputs: %s)" % (name, ", ".join(self.inputs)))
                array = np.ascontiguousarray(
                    feeds[name], dtype=trt.nptype(self.engine.get_tensor_dtype(name))
                )
                if not self.context.set_input_shape(name, tuple(array.shape)):
                    raise ValueError(
                        "input %r: shape %s is outside the engine's optimization profile"
                        % (name, list(array.shape))
                    )
                pointer = cuda.alloc(array.nbytes)
                allocated.append(pointer)
                cuda.to_device(pointer, array)
                self.context.set_tensor_address(name, pointer)
            results = {}
            for name in self.outputs:
                shape = tuple(self.context.get_tensor_shape(name))
                if any(d < 0 for d in shape):
                    raise RuntimeError(
                        "output %r has a data-dependent shape %s, which this loader does not handle"
                        % (name, list(shape))
                    )
                results[name] = np.empty(shape, dtype=trt.nptype(self.engine.get_tensor_dtype(name)))
                pointer = cuda.alloc(results[name].nbytes)
                allocated.append(pointer)
                self.context.set_tensor_address(name, pointer)
            if not self.context.execute_async_v3(cuda.stream.value or 0):
                raise RuntimeError("TensorRT failed to run the engine")
            cuda.synchronize()
            for name, pointer in zip(self.outputs, allocated[len(self.inputs) :]):
                cuda.to_host(results[name], pointer)
            return results
        finally:
            for pointer in allocated:
                cuda.free(pointer)


def runtime_predict(session, inputs):
    return session.run(inputs)
