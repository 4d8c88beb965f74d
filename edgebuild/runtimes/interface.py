"""RuntimeInterface: everything edgebuild knows about one on-device runtime, in one object.

A runtime (onnxruntime, tflite, coreml, llama.cpp, tensorrt, or a third party's) declares the
step kinds it owns, the coverage routes it checks models against, the loader template its bundles
carry, the extra files its bundles generate, the metadata its manifest takes from the build (model
I/O, self-test, runtime options), and what a build agent offers its device-bound steps. Generic
modules (coverage/checker.py, bundle/loaders.py, bundle/writer.py, bundling.py, remote_trust.py,
commands/agent.py) ask edgebuild.runtimes.registry instead of keeping their own lists. Imports
here stay standard-library only: the registry is read on every parse.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edgebuild.bundle.spec import BundleSpec

# The templates shipped with edgebuild (loaders and the common part every loader includes).
BUILTIN_TEMPLATES = Path(__file__).resolve().parent.parent / "bundle" / "templates"


@dataclass(frozen=True)
class StepRecord:
    """One finished step of a target, as the manifest sees it (bundling.py makes these)."""

    step: str  # its step kind, e.g. "ort.verify"
    outputs: Mapping[str, dict] = field(default_factory=dict)  # output name -> content-store record
    metadata: Mapping[str, Any] = field(default_factory=dict)  # what the step reported


@dataclass(frozen=True)
class ManifestMetadata:
    """What a runtime puts into its bundles' manifest from the build."""

    io: dict  # {"inputs": [...], "outputs": [...]}
    selftest: dict | None  # content-store record of the self-test file; None: none
    runtime_options: dict  # e.g. {"providers": [...]}


class RuntimeInterface:
    """Subclass and set the class attributes; override the methods where the runtime needs more."""

    name: str = ""  # recipe.runtime and the bundle manifest's "runtime"
    # Prefixes of the step kinds this runtime's recipes bring ("tflite." for tflite.convert, ...);
    # the shared kinds (onnx.*, coverage.check) belong to no runtime.
    step_kinds: tuple[str, ...] = ()
    loader_template: str = ""  # Jinja2 template rendering the bundle's loader.py
    templates_dir: Path = BUILTIN_TEMPLATES  # searched first; edgebuild's own templates after it
    # coverage route -> module with check(graph, settings) -> RouteResult (edgebuild/coverage/*.py)
    coverage_routes: dict[str, str] = {}
    option_keys: tuple[str, ...] = ()  # target params copied into the manifest's runtime_options
    # Where manifest_metadata() finds the manifest's model I/O (a key of the steps' metadata) and the
    # bundle's self-test file (a step output: reference inputs and expected outputs, an .npz).
    io_metadata: str = "io"
    selftest_output: str = "selftest.npz"

    def manifest_metadata(
        self, steps: Sequence[StepRecord], artifact_steps: Sequence[StepRecord], params: Mapping[str, Any]
    ) -> ManifestMetadata:
        """The manifest's metadata from a target's finished steps (`steps` in the target's order,
        `artifact_steps` those that made a bundled artifact, in artifact order) and its resolved
        parameters. The I/O is the first description an artifact's step reports (it describes what
        ships), else the first any step reports; the self-test is the last step's that wrote one."""
        io = next(
            (
                s.metadata[self.io_metadata]
                for s in [*artifact_steps, *steps]
                if s.metadata.get(self.io_metadata)
            ),
            None,
        )
        selftest = next(
            (
                s.outputs[self.selftest_output]
                for s in reversed(steps)
                if s.outputs.get(self.selftest_output) is not None
            ),
            None,
        )
        return ManifestMetadata(
            io=io or {"inputs": [], "outputs": []},
            selftest=selftest,
            runtime_options={k: params[k] for k in self.option_keys if k in params},
        )

    def extra_files(self, spec: BundleSpec) -> dict[str, bytes]:
        """Files the bundle generates besides loader.py and README.md (name inside the bundle -> bytes)."""
        return {}

    def detect_resources(self, slots: int) -> dict[str, float]:
        """Dask resources this host offers device-bound steps of this runtime (`edgebuild agent --detect`)."""
        return {}

    def __repr__(self) -> str:
        return f"<runtime {self.name}>"
