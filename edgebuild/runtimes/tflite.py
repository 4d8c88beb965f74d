"""TFLite / LiteRT, with the Edge TPU delegate where the target's `delegate` parameter asks for it."""

from edgebuild.runtimes.interface import RuntimeInterface


class TfliteRuntime(RuntimeInterface):
    name = "tflite"
    step_kinds = ("tflite.", "edgetpu.")
    loader_template = "loader_tflite.py.j2"
    coverage_routes = {"edgetpu": "edgebuild.coverage.edgetpu", "tflite": "edgebuild.coverage.tflite"}
    option_keys = ("delegate",)
    # the manifest's model I/O and self-test (see RuntimeInterface.manifest_metadata)
    io_metadata = "io"
    selftest_output = "selftest.npz"  # written by tflite.verify
