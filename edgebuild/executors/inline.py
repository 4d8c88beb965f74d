"""`--executor inline`: steps in this process, one at a time."""

from __future__ import annotations

from edgebuild.executors.base import Executor, Task, TaskResult


class InlineExecutor(Executor):
    """Runs steps in this process, one at a time: no isolation from crashes or memory growth, but
    no process start-up either. For debugging a step (breakpoints work) and for benchmarks."""

    capacity = 1

    def run(self, task: Task) -> TaskResult:
        from edgebuild.worker import run_request

        out = task.workdir / "out"
        out.mkdir(parents=True, exist_ok=True)
        result = run_request(
            {
                "step": task.step,
                "params": task.params,
                "inputs": task.inputs,
                "upstream": task.upstream,
                "out": str(out),
            }
        )
        return TaskResult(result["status"], result.get("message"), result.get("metadata") or {}, out)
