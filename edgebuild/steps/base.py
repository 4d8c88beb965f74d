"""The contract every kind of step implements.

A step is a pure function of input files plus parameters to output files. It never touches the
cache, the build folder or other steps: the executor hands it read-only input paths and an empty
output folder, and stores what it wrote. Step modules import only the standard library at module
level; heavy libraries (onnxruntime, tensorflow, torch, llama_cpp) are imported inside `run`, so
planning a build stays fast and a missing toolchain only affects the steps that need it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from edgebuild.errors import StepFailed  # noqa: F401  (re-exported: lives below the steps, see errors.py)


class Deferred(Exception):
    """The step needs a toolchain or device this host lacks. Raise it after doing whatever part of
    the work can be done here; the target becomes `deferred` and the message says what remains."""


@dataclass
class StepContext:
    inputs: dict[str, Path]  # role -> file or folder, read-only
    params: dict[str, Any]  # resolved, JSON-serialisable parameters
    out: Path  # empty folder; write every declared output under it
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("edgebuild.step"))
    upstream: dict[str, dict] = field(
        default_factory=dict
    )  # role -> metadata returned by the step that made that input

    def output(self, name: str) -> Path:
        return self.out / name

    def input(self, role: str) -> Path:
        try:
            return self.inputs[role]
        except KeyError:
            raise StepFailed(f"step input '{role}' was not provided") from None


class Step:
    """Subclass, set the class attributes, implement `run`.

    name:      dotted id used in recipes, e.g. "ort.quantize"
    version:   bump whenever the step's output for the same inputs may change; part of the action key
    uses:      Python distributions whose installed versions are part of the action key
    tools:     external executables (on PATH) whose `--version` output is part of the action key
    inputs:    input roles; a trailing "?" marks an optional one
    outputs:   names of the files or folders the step writes under ctx.out
    resources: what a build agent must advertise to run it (e.g. {"gpu-sm87": 1}); empty for any host
    """

    name: ClassVar[str]
    version: ClassVar[str] = "1"
    uses: ClassVar[tuple[str, ...]] = ()
    tools: ClassVar[tuple[str, ...]] = ()
    inputs: ClassVar[tuple[str, ...]] = ("model",)
    outputs: ClassVar[tuple[str, ...]] = ()
    reports_coverage: ClassVar[bool] = False  # `edgebuild check` runs it and shows metadata["coverage"]
    # optional input -> the input it stands in for: given only when that one is absent (verification
    # reads calibration data only without evaluation data, so changing it re-verifies nothing else)
    fallback_inputs: ClassVar[dict[str, str]] = {}

    def resources(self, params: dict[str, Any]) -> dict[str, float]:
        return {}

    def check_config(self, params: dict[str, Any], model_io: dict) -> list[str]:
        """Problems with this configuration that can be seen before anything runs (device and
        precision mistakes); `edgebuild check` reports them and exits 2. model_io: the source
        model's {"inputs": [...], "outputs": [...]}."""
        return []

    def required_inputs(self, params: dict[str, Any]) -> set[str]:
        """Roles that must be present for these parameters (an optional role may become required,
        e.g. calibration data for static quantization)."""
        return {role for role in self.inputs if not role.endswith("?")}

    def run(self, ctx: StepContext) -> dict[str, Any]:
        """Do the work; return JSON-serialisable metadata (I/O description, metrics, coverage...)
        that is stored with the outputs and reaches downstream steps and the bundle manifest."""
        raise NotImplementedError
