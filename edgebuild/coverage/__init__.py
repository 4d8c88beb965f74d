"""Operator coverage: which nodes of an ONNX model a target's converter and runtime can take.

    report = check_model(path, "edgetpu", {"input_shapes": {"x": [1, 3, 224, 224]}})
    report.render(console); problems = evaluate_policy(report, {"fallback": "warn", "min_accelerated_share": 0.9})

Module map: graph_walk (ONNX -> node records) -> one module per route (onnxruntime, tensorrt,
tflite, edgetpu, coreml; data in recipes/coverage/) -> partition (single-cut accelerators) ->
report (table, JSON) -> policy (targets.toml `fallback`, `min_accelerated_share`).
"""

from .checker import ROUTES, UnknownRouteError, check_model
from .graph_walk import ModelLoadError
from .policy import PolicyError, evaluate_policy, validate_policy
from .report import CoverageReport

__all__ = [
    "ROUTES",
    "CoverageReport",
    "ModelLoadError",
    "PolicyError",
    "UnknownRouteError",
    "check_model",
    "evaluate_policy",
    "validate_policy",
]
