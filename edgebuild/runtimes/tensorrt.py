"""TensorRT: engines are device-bound, so agents advertise their GPUs and TensorRT version."""

from __future__ import annotations

from edgebuild.runtimes.interface import RuntimeInterface


class TensorrtRuntime(RuntimeInterface):
    name = "tensorrt"
    step_kinds = ("tensorrt.",)
    loader_template = "loader_tensorrt.py.j2"
    coverage_routes = {"tensorrt": "edgebuild.coverage.tensorrt"}
    # the manifest's model I/O and self-test (see RuntimeInterface.manifest_metadata)
    io_metadata = "io"
    # written by tensorrt.selftest from onnxruntime's run (the engine may only be built on the device)
    selftest_output = "selftest.npz"

    def detect_resources(self, slots: int) -> dict[str, float]:
        """One `gpu-smXY` unit per GPU of compute capability X.Y, and `tensorrt-MAJOR.MINOR` (as
        many as the agent runs at once) when TensorRT is installed."""
        from importlib.metadata import PackageNotFoundError, version

        from edgebuild.steps.tensorrt import gpu_probe

        found: dict[str, float] = {}
        for gpu in gpu_probe.gpus():
            name = "gpu-sm" + gpu.compute_capability.replace(".", "")
            found[name] = found.get(name, 0) + 1
        try:
            trt = version("tensorrt")
            found["tensorrt-" + ".".join(trt.split(".")[:2])] = float(slots)
        except PackageNotFoundError:
            pass
        return found
