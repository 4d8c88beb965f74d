"""The bundle's `selftest.npz` for a Core ML package, and the tolerances it ships.

The Core ML runtime exists only on macOS, so these tolerances are not measured here: they are
set from the precision and compression the package was built with (fp16 arithmetic, quantised or
palettised weights) and checked on a Mac by the loader and by coreml.verify. Absolute tolerances
are scaled by the reference output's magnitude.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgebuild.npzfile import save_npz

# (relative atol, rtol, min_cosine) per precision/compression
_TOLERANCES = {
    "fp32": (1e-3, 1e-3, 0.9999),
    "fp16": (2e-2, 2e-2, 0.999),
    "int8": (5e-2, 5e-2, 0.995),
    "palettize-8": (5e-2, 5e-2, 0.995),
    "palettize-6": (8e-2, 8e-2, 0.99),
    "int4-block": (0.15, 0.15, 0.97),
    "palettize-4": (0.15, 0.15, 0.97),
    "palettize-3": (0.25, 0.25, 0.93),
    "palettize-2": (0.4, 0.4, 0.85),
    "palettize-1": (0.6, 0.6, 0.7),
}


def tolerances(precision: str, compression: str, reference_scale: float) -> dict[str, float]:
    key = compression if compression in _TOLERANCES else precision
    relative_atol, rtol, min_cosine = _TOLERANCES.get(key, _TOLERANCES["fp16"])
    if key != precision and precision == "fp16":
        min_cosine = min(min_cosine, _TOLERANCES["fp16"][2])
    return {"atol": relative_atol * max(reference_scale, 1e-6), "rtol": rtol, "min_cosine": min_cosine}


def image_pixels(values, image: dict):
    """Pixel values (0..255) for an image input whose package computes scale * pixel + bias."""
    import numpy as np

    bias = np.asarray(image["bias"], dtype=np.float64).reshape(1, -1, 1, 1)
    pixels = (values.astype(np.float64) - bias) / image["scale"]
    return np.clip(np.rint(pixels), 0, 255).astype(np.float32)


def pixels_to_input(pixels, image: dict, dtype):
    import numpy as np

    bias = np.asarray(image["bias"], dtype=np.float64).reshape(1, -1, 1, 1)
    return (pixels.astype(np.float64) * image["scale"] + bias).astype(dtype)


def write(path: Path, inputs: dict[str, Any], expected: dict[str, Any], tolerance: dict[str, float]) -> None:
    import numpy as np

    arrays = {f"input.{k}": v for k, v in inputs.items()}
    arrays.update({f"expected.{k}": np.asarray(v, dtype=np.float32) for k, v in expected.items()})
    arrays.update({k: np.asarray(v, dtype=np.float32) for k, v in tolerance.items()})
    save_npz(path, arrays)  # deterministic bytes: bundles must reproduce
