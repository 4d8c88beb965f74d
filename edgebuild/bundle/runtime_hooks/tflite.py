# ruff: noqa: F821  (reads the loader's RuntimeUnavailable)
# Runtime hooks of TFLite bundles: LiteRT (or tflite_runtime), the Edge TPU delegate when the
# target asks for it, and the manifest's I/O entries undone (normalisation, layout, int8).
#
# Copied verbatim into the loader.py of every TFLite bundle (templates/loader_tflite.py.j2 pastes it
# as the runtime hooks of _common.py.j2): runtime_load imports the runtime, never the module
# top, so `verify`, `install` and `rollback` work without it. Python 3.7.
import sys

RUNTIME = "tflite"
RUNTIME_REQUIREMENT = "ai-edge-litert (Python >= 3.10; 1.4 on 3.9), or tflite-runtime (2.11 on Python 3.7)"
RUNTIME_USED = None  # set by runtime_load: which interpreter package (and delegate) ran the model
EDGETPU_LIBRARIES = {"Linux": "libedgetpu.so.1", "Darwin": "libedgetpu.1.dylib", "Windows": "edgetpu.dll"}


def _interpreter_class():
    """(Interpreter, load_delegate, "package version") from ai_edge_litert where it is importable,
    else from tflite_runtime (Coral's Mendel images and Python 3.7, where ai-edge-litert has no
    wheels). The Edge TPU delegate is loaded with the load_delegate of whichever is used."""
    try:
        from ai_edge_litert.interpreter import Interpreter, load_delegate

        package = "ai_edge_litert"
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter, load_delegate

            package = "tflite_runtime"
        except ImportError:
            raise RuntimeUnavailable(
                "no TFLite runtime: pip install %s, and numpy" % RUNTIME_REQUIREMENT
            ) from None
    version = getattr(sys.modules.get(package), "__version__", None) or _distribution_version(package)
    return Interpreter, load_delegate, "%s %s" % (package, version or "(version unknown)")


def _distribution_version(package):
    try:
        from importlib import metadata  # Python 3.8+
    except ImportError:
        return None
    try:
        return metadata.version(package.replace("_", "-"))
    except Exception:
        return None


def _cpu_fallback_warning(reason):
    # Loud on purpose: an Edge TPU model silently running on the CPU is 10-100x slower, which
    # looks like a broken device rather than a missing driver.
    bar = "!" * 78
    sys.stderr.write(
        "%s\nWARNING: Edge TPU NOT USED, running on the CPU instead (%s).\n"
        "Install the Edge TPU runtime (libedgetpu) and plug in the device for full speed.\n%s\n"
        % (bar, reason, bar)
    )


def runtime_load(folder, manifest, options):
    import platform

    global RUNTIME_USED
    Interpreter, load_delegate, used = _interpreter_class()
    RUNTIME_USED = used + " on the CPU"
    artifacts = manifest["artifacts"]
    model_path = folder / artifacts[0]
    delegates = []
    if options.get("delegate") == "edgetpu":
        compiled = [name for name in artifacts if name.endswith("_edgetpu.tflite")]
        library = options.get("delegate_library") or EDGETPU_LIBRARIES.get(
            platform.system(), "libedgetpu.so.1"
        )
        try:
            # Probe with ctypes first: LiteRT's load_delegate leaves a half-built object behind
            # on failure, whose destructor prints a confusing traceback.
            import ctypes

            ctypes.CDLL(library)
            delegates = [load_delegate(library, options.get("delegate_options") or {})]
        except (ValueError, OSError) as exc:
            _cpu_fallback_warning("cannot load %s: %s" % (library, exc))
            # An Edge TPU-compiled model needs the delegate; run the plain int8 model instead.
            plain = [name for name in artifacts if name.endswith(".tflite") and name not in compiled]
            if plain:
                model_path = folder / plain[0]
            elif compiled:
                raise RuntimeUnavailable(
                    "this bundle holds only an Edge TPU-compiled model and %s is missing" % library
                )
        else:
            if compiled:
                RUNTIME_USED = "%s with the Edge TPU delegate %s" % (used, library)
                model_path = folder / compiled[0]
            else:
                _cpu_fallback_warning(
                    "the bundle has no Edge TPU-compiled model (compile step deferred: %s)"
                    % (manifest.get("remaining") or "edgetpu_compiler was not available")
                )
    interpreter = Interpreter(
        model_path=str(model_path),
        experimental_delegates=delegates or None,
        num_threads=options.get("num_threads"),
    )
    interpreter.allocate_tensors()
    if options.get("delegate") == "edgetpu":
        RUNTIME_USED += _edgetpu_split(manifest.get("coverage") or {})
        if not delegates:
            RUNTIME_USED += _cpu_latency(interpreter)
    return interpreter, manifest.get("io") or {}


def _edgetpu_split(coverage):
    """Which ops the Edge TPU runs: edgetpu_compiler's log when the build host had the compiler,
    else the prediction from Coral's published op rules on the int8 file."""
    if not coverage.get("total_ops"):
        return ""
    source = (
        "edgetpu_compiler's log"
        if coverage.get("source") == "edgetpu_compiler"
        else "predicted from Coral's op rules; edgetpu_compiler was not on the build host"
    )
    text = "\nEdge TPU ops (%s): %d of %d" % (
        source,
        coverage.get("accelerated_ops", 0),
        coverage["total_ops"],
    )
    if coverage.get("macs_share") is not None:
        text += ", %.0f%% of multiply-accumulates" % (100 * coverage["macs_share"])
    first = coverage.get("first_fallback")
    if first:
        text += "; from op #%s %s on, the CPU runs the rest (%s)" % (
            first.get("index"),
            first.get("op"),
            first.get("reason"),
        )
    return text


def _cpu_latency(interpreter, budget_s=1.0):
    """The int8 model's LiteRT latency on this host's CPU (median of up to 20 invokes in ~1 s)."""
    import time

    interpreter.invoke()  # warm-up (XNNPACK packs weights on the first run)
    times, started = [], time.perf_counter()
    while len(times) < 20 and time.perf_counter() - started < budget_s:
        t = time.perf_counter()
        interpreter.invoke()
        times.append(time.perf_counter() - t)
    times.sort()
    return "\nint8 LiteRT latency on this host's CPU: %.3f ms (median of %d)" % (
        1000 * times[len(times) // 2],
        len(times),
    )


def _quantization(detail):
    scale, zero_point = detail.get("quantization") or (0.0, 0)
    return float(scale), int(zero_point)


def runtime_predict(handle, inputs):
    """Inputs and outputs in the source model's terms (names, layout, float units): the manifest's
    I/O entries say how the converter changed them (normalisation, NCHW -> NHWC transpose, int8
    quantization) and the loader undoes that here. Without such entries, tensors are fed by their
    TFLite names and float values are quantized with the tensor's own scale."""
    import numpy as np

    interpreter, io = handle
    details = {d["name"]: d for d in interpreter.get_input_details()}
    entries = [e for e in io.get("inputs", []) if "transpose" in e]
    if not entries:
        entries = [{"name": n, "tensor": n} for n in details]
    for entry in entries:
        name = entry["name"]
        if name not in inputs:
            raise KeyError(
                "missing model input %r (inputs: %s)" % (name, ", ".join(e["name"] for e in entries))
            )
        value = (
            np.asarray(inputs[name], dtype=np.float32) if "transpose" in entry else np.asarray(inputs[name])
        )
        norm = entry.get("normalization")
        if norm:
            mean, std = np.asarray(norm["mean"], np.float32), np.asarray(norm["std"], np.float32)
            if mean.ndim == 1 and mean.size > 1 and value.ndim >= 3:  # per channel, channels first
                shape = [1, -1] + [1] * (value.ndim - 2)
                mean, std = mean.reshape(shape), std.reshape(shape)
            value = (value - mean) / std
        if "transpose" in entry:
            value = value.transpose(entry["transpose"])
        detail = details.get(entry.get("tensor")) or next(
            d for d in details.values() if d["index"] == entry.get("tensor_index")
        )
        dtype = np.dtype(detail["dtype"])
        scale, zero_point = _quantization(detail)
        if dtype.kind in "iu" and value.dtype.kind == "f" and scale > 0:
            info = np.iinfo(dtype)
            value = np.clip(np.round(value / scale) + zero_point, info.min, info.max)
        interpreter.set_tensor(
            detail["index"], np.ascontiguousarray(value.astype(dtype).reshape(detail["shape"]))
        )
    interpreter.invoke()
    out_details = {d["name"]: d for d in interpreter.get_output_details()}
    out_entries = [e for e in io.get("outputs", []) if "transpose" in e] or [
        {"name": n, "tensor": n} for n in out_details
    ]
    outputs = {}
    for entry in out_entries:
        detail = out_details.get(entry.get("tensor")) or next(
            d for d in out_details.values() if d["index"] == entry.get("tensor_index")
        )
        value = interpreter.get_tensor(detail["index"])
        scale, zero_point = _quantization(detail)
        if value.dtype.kind in "iu" and scale > 0:
            value = ((value.astype(np.float32) - zero_point) * scale).astype(np.float32)
        if "transpose" in entry:
            value = value.transpose([entry["transpose"].index(i) for i in range(len(entry["transpose"]))])
        outputs[entry["name"]] = value
    return outputs
