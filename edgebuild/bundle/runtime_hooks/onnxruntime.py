# ruff: noqa: F821  (reads the loader's RuntimeUnavailable)
# Runtime hooks of ONNX Runtime bundles: an InferenceSession with the target's providers.
#
# Copied verbatim into the loader.py of every ONNX Runtime bundle (templates/loader_onnxruntime.py.j2 pastes it
# as the runtime hooks of _common.py.j2): runtime_load imports the runtime, never the module
# top, so `verify`, `install` and `rollback` work without it. Python 3.7.
import sys

RUNTIME = "onnxruntime"
RUNTIME_REQUIREMENT = "onnxruntime"
RUNTIME_USED = None  # set by runtime_load: the onnxruntime version and the providers it runs with


def runtime_load(folder, manifest, options):
    try:
        import onnxruntime as ort
    except ImportError:
        raise RuntimeUnavailable(
            "onnxruntime is not installed: pip install %s numpy" % RUNTIME_REQUIREMENT
        ) from None
    models = [name for name in manifest["artifacts"] if name.endswith(".onnx")] or manifest["artifacts"]
    model_path = folder / models[0]  # external weight files (*.data) sit beside it
    # Providers in the order the target asked for; those this onnxruntime build lacks are skipped,
    # and the CPU provider is always the last resort.
    wanted = list(options.get("providers") or ["CPUExecutionProvider"])
    available = set(ort.get_available_providers())
    providers = [p for p in wanted if p in available]
    missing = [p for p in wanted if p not in available]
    if missing:
        sys.stderr.write(
            "warning: onnxruntime here lacks %s; using %s\n"
            % (", ".join(missing), ", ".join(providers) or "CPUExecutionProvider")
        )
    if "CPUExecutionProvider" not in providers:
        providers.append("CPUExecutionProvider")
    global RUNTIME_USED
    RUNTIME_USED = "onnxruntime %s with %s" % (
        getattr(ort, "__version__", "(version unknown)"),
        ", ".join(providers),
    )
    session_options = ort.SessionOptions()
    if options.get("intra_op_num_threads"):
        session_options.intra_op_num_threads = int(options["intra_op_num_threads"])
    return ort.InferenceSession(str(model_path), sess_options=session_options, providers=providers)


def runtime_predict(session, inputs):
    import numpy as np

    feeds = {}
    for spec in session.get_inputs():
        if spec.name not in inputs:
            raise KeyError(
                "missing model input %r (inputs: %s)"
                % (spec.name, ", ".join(i.name for i in session.get_inputs()))
            )
        feeds[spec.name] = np.asarray(inputs[spec.name])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds)))
