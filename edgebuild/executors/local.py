"""`--executor local` (the default): each step in a fresh worker process on this host."""

from __future__ import annotations

import os
import signal
import subprocess

from edgebuild.executors.base import Executor, Task, TaskResult
from edgebuild.executors.launch import run_worker


class LocalExecutor(Executor):
    """Each task in a fresh worker process on this host; at most `jobs` at once."""

    def __init__(self, jobs: int) -> None:
        self.capacity = max(1, jobs)
        self._procs: set[subprocess.Popen] = set()

    def run(self, task: Task) -> TaskResult:
        out = task.workdir / "out"
        out.mkdir(parents=True, exist_ok=True)
        request = {
            "step": task.step,
            "params": task.params,
            "inputs": task.inputs,
            "upstream": task.upstream,
            "out": str(out),
        }
        done = run_worker(
            task.python, request, task.workdir, task.log_file, new_session=True, running=self._procs
        )
        if done.result is None:
            return TaskResult("failed", f"worker process {done.how()}", {}, out)
        result = done.result
        return TaskResult(result["status"], result.get("message"), result.get("metadata") or {}, out)

    def shutdown(self) -> None:
        for proc in list(self._procs):  # on Ctrl-C: stop the workers' whole process groups
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
