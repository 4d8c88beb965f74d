"""Core ML: a Python loader (coremltools, macOS) plus LoadModel.swift for apps."""
from __future__ import annotations

from edgebuild.runtimes.interface import RuntimeInterface


class CoremlRuntime(RuntimeInterface):
    name = "coreml"
    loader_template = "loader_coreml.py.j2"
    coverage_routes = {"coreml": "edgebuild.coverage.coreml"}

    def extra_files(self, spec) -> dict[str, bytes]:
        from edgebuild.bundle.loaders import render_swift
        return {"LoadModel.swift": render_swift(spec).encode("utf-8")}
