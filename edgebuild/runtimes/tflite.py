"""TFLite / LiteRT, with the Edge TPU delegate where the target's `delegate` parameter asks for it."""
from edgebuild.runtimes.interface import RuntimeInterface


class TfliteRuntime(RuntimeInterface):
    name = "tflite"
    loader_template = "loader_tflite.py.j2"
    coverage_routes = {"edgetpu": "edgebuild.coverage.edgetpu", "tflite": "edgebuild.coverage.tflite"}
    option_keys = ("delegate",)
