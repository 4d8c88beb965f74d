"""RuntimeInterface: everything edgebuild knows about one on-device runtime, in one object.

A runtime (onnxruntime, tflite, coreml, llama.cpp, tensorrt, or a third party's) declares the
coverage routes it checks models against, the loader template its bundles carry, the extra files
its bundles generate, which target parameters become runtime options in the manifest, and what a
build agent offers its device-bound steps. Generic modules (coverage/checker.py, bundle/loaders.py,
bundle/writer.py, bundling.py, commands/agent.py) ask edgebuild.runtimes.registry instead of keeping
their own lists. Imports here stay standard-library only: the registry is read on every parse.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edgebuild.bundle.spec import BundleSpec

# The templates shipped with edgebuild (loaders and the common part every loader includes).
BUILTIN_TEMPLATES = Path(__file__).resolve().parent.parent / "bundle" / "templates"


class RuntimeInterface:
    """Subclass and set the class attributes; override the methods where the runtime needs more."""

    name: str = ""                       # recipe.runtime and the bundle manifest's "runtime"
    loader_template: str = ""            # Jinja2 template rendering the bundle's loader.py
    templates_dir: Path = BUILTIN_TEMPLATES   # searched first; edgebuild's own templates after it
    # coverage route -> module with check(graph, settings) -> RouteResult (edgebuild/coverage/*.py)
    coverage_routes: dict[str, str] = {}
    option_keys: tuple[str, ...] = ()    # target params copied into the manifest's runtime_options

    def extra_files(self, spec: BundleSpec) -> dict[str, bytes]:
        """Files the bundle generates besides loader.py and README.md (name inside the bundle -> bytes)."""
        return {}

    def detect_resources(self, slots: int) -> dict[str, float]:
        """Dask resources this host offers device-bound steps of this runtime (`edgebuild agent --detect`)."""
        return {}

    def __repr__(self) -> str:
        return f"<runtime {self.name}>"
