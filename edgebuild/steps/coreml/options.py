"""Checks a Core ML target's parameters and turns them into plain values.

Everything here is standard library only, so a typo in a target fails with one line naming the
parameter before torch or coremltools is imported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from edgebuild.steps.base import StepFailed

PRECISIONS = ("fp16", "fp32")
COMPUTE_UNITS = ("ALL", "CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE")
INPUT_TYPES = ("tensor", "image")
COLOR_LAYOUTS = ("RGB", "BGR", "GRAYSCALE")
# ML Program packages need at least these OS releases (Core ML 5).
MIN_ML_PROGRAM = {"iOS": 15, "macOS": 12, "watchOS": 8, "tvOS": 15}
DEPLOYMENT_TARGET = re.compile(r"^(iOS|macOS|watchOS|tvOS)(\d+)$")
COMPRESSION = re.compile(r"^(none|int8|palettize-(1|2|3|4|6|8)|int4-block)$")


@dataclass(frozen=True)
class ImageInput:
    scale: float
    bias: tuple[float, ...]
    color_layout: str


@dataclass(frozen=True)
class ConvertOptions:
    precision: str
    deployment_target: str  # e.g. "iOS16", a name in coremltools.target
    compute_units: str  # a name in coremltools.ComputeUnit
    input_shapes: dict[str, list[int]]
    image_inputs: dict[str, ImageInput] = field(default_factory=dict)  # input name -> preprocessing
    metadata: dict[str, Any] = field(default_factory=dict)


def choice(params: dict, key: str, allowed: tuple[str, ...], default: str) -> str:
    value = params.get(key, default)
    if value not in allowed:
        raise StepFailed(f"parameter '{key}' = {value!r}: expected one of {', '.join(allowed)}")
    return value


def deployment_target(params: dict) -> str:
    """The target's own value, else the device profile's (passed as device_minimum_deployment_target)."""
    value = str(
        params.get("minimum_deployment_target") or params.get("device_minimum_deployment_target") or "iOS16"
    )
    match = DEPLOYMENT_TARGET.match(value)
    if not match:
        raise StepFailed(
            f"parameter 'minimum_deployment_target' = {value!r}: expected e.g. iOS16, macOS13, watchOS9, tvOS16"
        )
    platform, release = match.group(1), int(match.group(2))
    if release < MIN_ML_PROGRAM[platform]:
        raise StepFailed(
            f"parameter 'minimum_deployment_target' = {value!r}: ML Program packages need "
            f"{platform}{MIN_ML_PROGRAM[platform]} or later"
        )
    return value


def compute_units(params: dict) -> str:
    """The target's own value, else the device profile's (passed as device_compute_units)."""
    value = params.get("compute_units") or params.get("device_compute_units") or "ALL"
    return choice({"compute_units": value}, "compute_units", COMPUTE_UNITS, "ALL")


def input_shapes(params: dict) -> dict[str, list[int]]:
    shapes = params.get("input_shapes") or {}
    if not isinstance(shapes, dict):
        raise StepFailed("parameter 'input_shapes': expected a table of input name -> list of ints")
    for name, shape in shapes.items():
        if not isinstance(shape, list) or not all(isinstance(d, int) and d > 0 for d in shape):
            raise StepFailed(f"parameter 'input_shapes.{name}' = {shape!r}: expected a list of positive ints")
    return {str(k): list(v) for k, v in shapes.items()}


def _image_inputs(params: dict) -> dict[str, ImageInput]:
    """`input_type = "image"` makes every input named in `image_inputs` (default: all) an image."""
    if choice(params, "input_type", INPUT_TYPES, "tensor") == "tensor":
        return {}
    names = params.get("image_inputs") or ["*"]
    scale = params.get("image_scale", 1.0 / 255.0)
    bias = params.get("image_bias", 0.0)
    if not isinstance(scale, (int, float)):
        raise StepFailed(f"parameter 'image_scale' = {scale!r}: expected a number")
    biases = bias if isinstance(bias, list) else [bias]
    if not biases or not all(isinstance(b, (int, float)) for b in biases):
        raise StepFailed(f"parameter 'image_bias' = {bias!r}: expected a number or a list of numbers")
    layout = choice(params, "color_layout", COLOR_LAYOUTS, "RGB")
    spec = ImageInput(float(scale), tuple(float(b) for b in biases), layout)
    return {str(name): spec for name in names}


def _metadata(params: dict) -> dict[str, Any]:
    keys = ("author", "license", "version", "short_description")
    meta = {k: str(params.get(k) or "") for k in keys}
    for key in ("input_descriptions", "output_descriptions"):
        value = params.get(key) or {}
        if not isinstance(value, dict):
            raise StepFailed(f"parameter '{key}': expected a table of name -> text")
        meta[key] = {str(k): str(v) for k, v in value.items()}
    return meta


def convert_options(params: dict) -> ConvertOptions:
    return ConvertOptions(
        precision=choice(params, "precision", PRECISIONS, "fp16"),
        deployment_target=deployment_target(params),
        compute_units=compute_units(params),
        input_shapes=input_shapes(params),
        image_inputs=_image_inputs(params),
        metadata=_metadata(params),
    )


def compression(params: dict) -> str:
    value = str(params.get("compression", "none"))
    if not COMPRESSION.match(value):
        raise StepFailed(
            f"parameter 'compression' = {value!r}: expected none, int8, palettize-N (N in 1,2,3,4,6,8) or int4-block"
        )
    return value
