"""Running the package itself, which only the Core ML runtime on macOS can do."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any


def unavailable_reason() -> str | None:
    """Why the package cannot be run on this host, or None when it can."""
    if platform.system() != "Darwin":
        return f"the Core ML runtime is macOS-only (this host runs {platform.system()})"
    try:
        from coremltools.models.model import _MLModelProxy  # noqa: F401
    except ImportError:
        return "coremltools was installed without its macOS runtime bindings"
    return None


def predict(
    package: Path, compute_units: str, feeds: dict[str, Any], image_inputs: dict[str, dict]
) -> dict[str, Any]:
    """One prediction with coremltools.models.MLModel; image inputs are given as pixel arrays [1,C,H,W]."""
    import numpy as np
    from PIL import Image

    from .mil_conversion import import_coremltools

    ct = import_coremltools()
    model = ct.models.MLModel(str(package), compute_units=getattr(ct.ComputeUnit, compute_units))
    request = {}
    for name, value in feeds.items():
        if name in image_inputs:
            pixels = np.transpose(value[0], (1, 2, 0)).astype(np.uint8)
            if image_inputs[name].get("color_layout") == "BGR":
                pixels = pixels[..., ::-1]  # PIL images are RGB; Core ML reorders to the model's BGR
            request[name] = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
        else:
            request[name] = value
    return {k: np.asarray(v) for k, v in model.predict(request).items()}
