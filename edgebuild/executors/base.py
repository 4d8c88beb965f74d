"""The interface between the scheduler and whatever runs steps: a Task goes in, a TaskResult comes
out. The scheduler sees only this, so a distributed executor (Dask with device-advertising agents)
plugs in without touching steps or the cache."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Task:
    node_id: str
    label: str
    step: str
    params: dict
    inputs: dict[str, str]  # role -> path
    upstream: dict[str, dict]  # role -> metadata of the step that made the input
    workdir: Path  # empty; the step writes under workdir/out
    log_file: Path
    python: str = sys.executable  # interpreter of the step's toolchain environment
    resources: dict = field(default_factory=dict)
    input_records: dict[str, dict] = field(
        default_factory=dict
    )  # role -> cache record (digest, tree listing)
    toolchain: dict | None = None  # the step's toolchain spec, for executors that run it on another host
    key_versions: dict = field(default_factory=dict)  # library/tool versions in the action key (this host's)


@dataclass
class TaskResult:
    status: str  # ok | deferred | failed
    message: str | None
    metadata: dict
    out_dir: Path


class Executor:
    """`run` blocks until the task is done; the scheduler calls it from up to `capacity` threads."""

    capacity: int = 1

    def run(self, task: Task) -> TaskResult:
        raise NotImplementedError

    def shutdown(self) -> None:
        pass
