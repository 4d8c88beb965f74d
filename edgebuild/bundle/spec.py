"""What the engine hands over to make one bundle."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class BundleSpec:
    project: str
    version: str  # semantic version (semver.org)
    target: str
    device: str
    recipe: str
    runtime: str  # a runtime of edgebuild.runtimes: picks its loader template
    artifacts: dict[str, Path]  # name inside the bundle -> file or folder (e.g. an .mlpackage)
    io: dict  # {"inputs": [...], "outputs": [...]} per the metadata convention
    selftest: Path | None  # selftest.npz, shipped as selftest/selftest.npz
    status: str = "built"  # or "deferred"
    remaining: str | None = None  # for deferred: what must still happen on the device
    coverage: dict | None = None
    metrics: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)  # source hash, step/toolchain/edgebuild versions
    runtime_options: dict = field(default_factory=dict)  # e.g. {"providers": [...]}, {"delegate": "edgetpu"}
    extra_files: dict[str, Path] = field(default_factory=dict)  # name inside the bundle -> file
    # what the loader needs on the device (edgebuild/device_platform.py bundle_requirements):
    # python, runtime_package, runtime_version, os, device_python, openssl
    requirements: dict = field(default_factory=dict)

    @property
    def folder_name(self) -> str:
        """The bundle's single top folder, and the archive's name without .tar.gz."""
        return f"{self.project}-{self.target}-{self.version}"
