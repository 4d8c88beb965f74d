"""What the last build of each target looked like: the key and key parts of each of its steps
(so `build --dry-run` can say which input, parameter or tool changed) and the artifacts it put in
build/<target>/ (so artifacts of an earlier configuration are removed)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from edgebuild.fsutil import atomic_write_json


@dataclass
class TargetState:
    file: Path
    steps: dict[str, dict] = field(default_factory=dict)  # recipe step id -> {"key", "parts"}
    artifacts: list[str] = field(default_factory=list)
    _loaded: dict = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, root: Path, target: str) -> "TargetState":
        file = root / ".edgebuild" / "state" / "targets" / f"{target}.json"
        try:
            data = json.loads(file.read_text())
        except (FileNotFoundError, ValueError):
            data = {}
        return cls(file=file, steps=data.get("steps", {}), artifacts=data.get("artifacts", []), _loaded=data)

    def record_steps(self, steps: dict[str, dict]) -> None:
        self.steps.update(steps)

    def save(self) -> None:
        data = {"steps": self.steps, "artifacts": self.artifacts}
        if data != self._loaded:  # a no-op build writes nothing
            atomic_write_json(self.file, data)
            self._loaded = data


def results_dir(root: Path) -> Path:
    return root / ".edgebuild" / "state" / "results"


def save_result(root: Path, target: str, data: dict) -> None:
    """The last build's summary of one target (status, artifacts, bundle, metrics, coverage), read
    by `edgebuild report`; rewritten only when it changed."""
    file = results_dir(root) / f"{target}.json"
    try:
        if json.loads(file.read_text()) == data:
            return
    except (FileNotFoundError, ValueError):
        pass
    atomic_write_json(file, data)


def load_results(root: Path) -> dict[str, dict]:
    found = {}
    for file in sorted(results_dir(root).glob("*.json")):
        try:
            found[file.stem] = json.loads(file.read_text())
        except ValueError:
            continue
    return found
