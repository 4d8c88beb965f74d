# ruff: noqa: F821  (reads the loader's RuntimeUnavailable)
# Runtime hooks of Core ML bundles: coremltools' MLModel (macOS only), image inputs as PIL images.
#
# Copied verbatim into the loader.py of every Core ML bundle (templates/loader_coreml.py.j2 pastes it
# as the runtime hooks of _common.py.j2): runtime_load imports the runtime, never the module
# top, so `verify`, `install` and `rollback` work without it. Python 3.7.
RUNTIME = "coreml"
RUNTIME_REQUIREMENT = "coremltools"
RUNTIME_USED = None  # set by runtime_load: the coremltools version and compute units


def runtime_load(folder, manifest, options):
    import platform

    if platform.system() != "Darwin":
        # coremltools can read the model anywhere but only Core ML on macOS can run it.
        raise RuntimeUnavailable(
            "Core ML models run only on macOS (this is %s); checksums and the "
            "signature can still be checked with `verify`" % platform.system()
        )
    try:
        import coremltools as ct
    except ImportError:
        raise RuntimeUnavailable(
            "coremltools is not installed: pip install %s numpy" % RUNTIME_REQUIREMENT
        ) from None
    units = getattr(ct.ComputeUnit, options.get("compute_units", "ALL"))
    global RUNTIME_USED
    RUNTIME_USED = "coremltools %s (Core ML, compute units %s)" % (ct.__version__, units.name)
    models = [n for n in manifest["artifacts"] if n.endswith((".mlpackage", ".mlmodel"))] or manifest[
        "artifacts"
    ]
    images = {e["name"]: e["image"] for e in (manifest.get("io") or {}).get("inputs", []) if e.get("image")}
    return ct.models.MLModel(str(folder / models[0]), compute_units=units), images


def runtime_predict(handle, inputs):
    """Image inputs (manifest I/O entries with "image") take [1, C, H, W] pixel arrays, passed to
    Core ML as PIL images; other inputs are passed as arrays."""
    import numpy as np

    model, images = handle
    request = {}
    for name, value in inputs.items():
        if name in images:
            from PIL import Image

            pixels = np.transpose(np.asarray(value)[0], (1, 2, 0)).astype(np.uint8)
            if images[name].get("color_space") == "BGR":
                pixels = pixels[..., ::-1]  # PIL images are RGB; Core ML reorders to the model's BGR
            request[name] = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
        else:
            request[name] = np.asarray(value)
    return {name: np.asarray(value) for name, value in model.predict(request).items()}
