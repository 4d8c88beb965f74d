"""ONNX Runtime: the loader picks execution providers from the target's `providers` parameter."""
from edgebuild.runtimes.interface import RuntimeInterface


class OnnxRuntime(RuntimeInterface):
    name = "onnxruntime"
    loader_template = "loader_onnxruntime.py.j2"
    coverage_routes = {"onnxruntime": "edgebuild.coverage.onnxruntime"}
    option_keys = ("providers",)
