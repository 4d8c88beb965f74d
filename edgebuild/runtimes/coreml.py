"""Core ML: a Python loader (coremltools, macOS) plus LoadModel.swift for apps."""

from __future__ import annotations

from edgebuild.runtimes.interface import RuntimeInterface


class CoremlRuntime(RuntimeInterface):
    name = "coreml"
    step_kinds = ("coreml.",)
    loader_template = "loader_coreml.py.j2"
    coverage_routes = {"coreml": "edgebuild.coverage.coreml"}
    # the manifest's model I/O and self-test (see RuntimeInterface.manifest_metadata)
    io_metadata = "io"
    selftest_output = "selftest.npz"  # written by coreml.verify

    def extra_files(self, spec) -> dict[str, bytes]:
        from edgebuild.bundle.loaders import render_swift

        return {"LoadModel.swift": render_swift(spec).encode("utf-8")}
