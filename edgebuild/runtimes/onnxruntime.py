"""ONNX Runtime: the loader picks execution providers from the target's `providers` parameter."""

from edgebuild.runtimes.interface import RuntimeInterface


class OnnxRuntime(RuntimeInterface):
    name = "onnxruntime"
    step_kinds = ("ort.",)
    loader_template = "loader_onnxruntime.py.j2"
    coverage_routes = {"onnxruntime": "edgebuild.coverage.onnxruntime"}
    option_keys = ("providers",)
    # the manifest's model I/O and self-test (see RuntimeInterface.manifest_metadata)
    io_metadata = "io"
    selftest_output = "selftest.npz"  # written by ort.verify
