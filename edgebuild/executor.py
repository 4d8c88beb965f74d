"""Executors run step tasks somewhere and hand back their result. The scheduler only sees this
interface, so a distributed executor (e.g. Dask with device-advertising agents) plugs in without
touching steps or the cache.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import edgebuild

SOURCE_ROOT = Path(edgebuild.__file__).resolve().parent.parent


@dataclass
class Task:
    node_id: str
    label: str
    step: str
    params: dict
    inputs: dict[str, str]          # role -> path
    upstream: dict[str, dict]       # role -> metadata of the step that made the input
    workdir: Path                   # empty; the step writes under workdir/out
    log_file: Path
    python: str = sys.executable    # interpreter of the step's toolchain environment
    resources: dict = field(default_factory=dict)
    input_records: dict[str, dict] = field(default_factory=dict)  # role -> cache record (digest, tree listing)
    toolchain: dict | None = None   # the step's toolchain spec, for executors that run it on another host
    key_versions: dict = field(default_factory=dict)  # library/tool versions in the action key (this host's)


@dataclass
class TaskResult:
    status: str                     # ok | deferred | failed
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


class LocalExecutor(Executor):
    """Each task in a fresh worker process on this host; at most `jobs` at once."""

    def __init__(self, jobs: int) -> None:
        self.capacity = max(1, jobs)
        self._procs: set[subprocess.Popen] = set()

    def run(self, task: Task) -> TaskResult:
        out = task.workdir / "out"
        out.mkdir(parents=True, exist_ok=True)
        request = {"step": task.step, "params": task.params, "inputs": task.inputs, "upstream": task.upstream,
                   "out": str(out), "result": str(task.workdir / "result.json")}
        request_file = task.workdir / "request.json"
        request_file.write_text(json.dumps(request))
        env = dict(os.environ)
        if task.python != sys.executable:
            # a toolchain interpreter must see edgebuild and nothing else of this environment
            from edgebuild.toolchain import worker_pythonpath
            env["PYTHONPATH"] = worker_pythonpath()
        else:
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SOURCE_ROOT), env.get("PYTHONPATH")]))
        task.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(task.log_file, "wb") as log:
            proc = subprocess.Popen([task.python, "-m", "edgebuild.worker", str(request_file)],
                                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=env, cwd=task.workdir, start_new_session=True)
            self._procs.add(proc)
            try:
                code = proc.wait()
            finally:
                self._procs.discard(proc)
        result_file = task.workdir / "result.json"
        if not result_file.is_file():
            how = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
            return TaskResult("failed", f"worker process {how}", {}, out)
        result = json.loads(result_file.read_text())
        return TaskResult(result["status"], result.get("message"), result.get("metadata") or {}, out)

    def shutdown(self) -> None:
        for proc in list(self._procs):   # on Ctrl-C: stop the workers' whole process groups
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass


class InlineExecutor(Executor):
    """Runs steps in this process, one at a time: no isolation from crashes or memory growth, but
    no process start-up either. For debugging a step (breakpoints work) and for benchmarks."""

    capacity = 1

    def run(self, task: Task) -> TaskResult:
        from edgebuild.worker import run_request

        out = task.workdir / "out"
        out.mkdir(parents=True, exist_ok=True)
        result = run_request({"step": task.step, "params": task.params, "inputs": task.inputs,
                              "upstream": task.upstream, "out": str(out)})
        return TaskResult(result["status"], result.get("message"), result.get("metadata") or {}, out)


def make_executor(spec: str, jobs: int, remote_cache: str | None = None) -> Executor:
    """remote_cache: the shared cache URL (--remote-cache or [cache] remote), which a distributed
    executor needs; $EDGEBUILD_REMOTE_CACHE stands in when the caller passes none."""
    if spec == "local":
        return LocalExecutor(jobs)
    if spec == "inline":
        return InlineExecutor()
    if spec.startswith("dask://"):
        from edgebuild.dask_executor import DaskExecutor, parse_address
        return DaskExecutor(parse_address(spec), remote_cache or os.environ.get("EDGEBUILD_REMOTE_CACHE"), jobs)
    from edgebuild.errors import ConfigError
    raise ConfigError(f"unknown executor '{spec}': use local, inline or dask://HOST:PORT")
