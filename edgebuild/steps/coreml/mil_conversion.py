"""Traced PyTorch -> Core ML ML Program (the second half of the route), with errors named by node."""

from __future__ import annotations

import logging
import re
from typing import Any

from edgebuild.steps.base import StepFailed

from .onnx_route import PreparedModel

# aten spellings onnx2torch emits that coremltools 9 registers only under their short names.
_ATEN_ALIASES = {"greater": "gt", "less": "lt", "greater_equal": "ge", "less_equal": "le"}
_FAILED_OP = re.compile(r"converting '([^']+)' op \(located at: '([^']*)'\)")
_MISSING_OP = re.compile(r"convert function for op '([^']+)' not implemented")


def import_coremltools():
    """coremltools, with its Linux noise (missing native proxies, untested torch) kept off stderr."""
    import contextlib
    import io
    import warnings

    with (
        contextlib.redirect_stdout(io.StringIO()),
        contextlib.redirect_stderr(io.StringIO()),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore")
        import coremltools
    logging.getLogger("coremltools").setLevel(logging.ERROR)
    _register_aliases()
    return coremltools


def _register_aliases() -> None:
    from coremltools.converters.mil.frontend.torch.torch_op_registry import _TORCH_OPS_REGISTRY

    for alias, existing in _ATEN_ALIASES.items():
        if _TORCH_OPS_REGISTRY.get_func(alias) is None:
            _TORCH_OPS_REGISTRY.set_func_by_name(_TORCH_OPS_REGISTRY.get_func(existing), alias)


class _ErrorCapture(logging.Handler):
    """coremltools logs which torch op (and module scope) failed just before re-raising."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def _numpy_type(dtype: str):
    import numpy as np

    # Core ML multiarrays hold fp16/fp32/int32 (and fp64 on macOS); int64 and bool travel as int32.
    return {"float32": np.float32, "float16": np.float16, "float64": np.float32}.get(dtype, np.int32)


def input_types(ct, prepared: PreparedModel, image_inputs: dict) -> list[Any]:
    types = []
    image_names = set(image_inputs)
    for info in prepared.inputs:
        image = image_inputs.get(info.name) or image_inputs.get("*")
        if image is None:
            types.append(
                ct.TensorType(name=info.name, shape=tuple(info.shape), dtype=_numpy_type(info.dtype))
            )
            continue
        channels = 1 if image.color_layout == "GRAYSCALE" else 3
        if len(info.shape) != 4 or info.shape[0] != 1 or info.shape[1] != channels:
            raise StepFailed(
                f"parameter 'input_type' = \"image\": input '{info.name}' has shape {info.shape}, "
                f"an {image.color_layout} image input needs [1, {channels}, H, W]"
            )
        if len(image.bias) not in (1, channels):
            raise StepFailed(
                f"parameter 'image_bias': {len(image.bias)} values for a {channels}-channel input"
            )
        bias = list(image.bias) if len(image.bias) == channels else [image.bias[0]] * channels
        layout = {"RGB": ct.colorlayout.RGB, "BGR": ct.colorlayout.BGR, "GRAYSCALE": ct.colorlayout.GRAYSCALE}
        types.append(
            ct.ImageType(
                name=info.name,
                shape=tuple(info.shape),
                scale=image.scale,
                bias=bias if channels == 3 else bias[0],
                color_layout=layout[image.color_layout],
            )
        )
        image_names.discard(info.name)
    image_names.discard("*")
    if image_names:
        raise StepFailed(
            f"parameter 'image_inputs' names '{sorted(image_names)[0]}', which is not a model input"
        )
    return types


def output_types(ct, prepared: PreparedModel, reference_outputs: list[Any]) -> list[Any]:
    import numpy as np

    types = []
    for name, value in zip(prepared.output_names, reference_outputs):
        floating = np.issubdtype(value.dtype, np.floating)
        # fp16 programs would otherwise return FLOAT16 outputs; keep the source model's fp32
        types.append(ct.TensorType(name=name, dtype=np.float32) if floating else ct.TensorType(name=name))
    return types


def convert(prepared: PreparedModel, traced, options, reference_outputs: list[Any]):
    """ct.convert to an ML Program; StepFailed naming the ONNX node when a torch op has no MIL lowering."""
    ct = import_coremltools()
    if options.deployment_target not in ct.target.__members__:
        known = ", ".join(
            name
            for name in ct.target.__members__
            if not name.startswith(("iOS13", "iOS14", "macOS10", "macOS11"))
        )
        raise StepFailed(
            f"parameter 'minimum_deployment_target' = {options.deployment_target!r}: coremltools "
            f"{ct.__version__} knows {known}"
        )
    capture = _ErrorCapture()
    ct_logger = logging.getLogger("coremltools")
    ct_logger.addHandler(capture)
    try:
        return ct.convert(
            traced,
            source="pytorch",
            convert_to="mlprogram",
            inputs=input_types(ct, prepared, options.image_inputs),
            outputs=output_types(ct, prepared, reference_outputs),
            minimum_deployment_target=getattr(ct.target, options.deployment_target),
            compute_precision=ct.precision.FLOAT16 if options.precision == "fp16" else ct.precision.FLOAT32,
            compute_units=getattr(ct.ComputeUnit, options.compute_units),
            skip_model_load=True,  # the Core ML runtime exists only on macOS
        )
    except StepFailed:
        raise
    except Exception as exc:
        raise StepFailed(_explain_failure(prepared, exc, capture.messages)) from None
    finally:
        ct_logger.removeHandler(capture)


def _explain_failure(prepared: PreparedModel, exc: Exception, logged: list[str]) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    for message in logged:
        match = _FAILED_OP.search(message)
        if match:
            torch_op, scope = match.groups()
            where = prepared.node_from_text(scope) or f"scope '{scope}'"
            missing = _MISSING_OP.search(text)
            if missing:
                return f"Core ML route cannot convert ONNX op {where}: coremltools has no lowering for torch op '{torch_op}'"
            return f"Core ML route cannot convert ONNX op {where}: coremltools failed on torch op '{torch_op}': {text}"
    return f"coremltools conversion failed: {text}"
