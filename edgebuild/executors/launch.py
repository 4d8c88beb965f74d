"""Starting one step's worker process (`python -m edgebuild.worker request.json`) and reading the
result.json it leaves: the one way steps run in their own process, on this host (LocalExecutor)
and on a build agent (agent_side.run_on_agent)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import edgebuild

SOURCE_ROOT = Path(edgebuild.__file__).resolve().parent.parent


@dataclass
class WorkerExit:
    code: int  # the process's exit status (negative: killed by that signal)
    result: dict | None  # result.json: status, message, metadata; None when it died first

    def how(self) -> str:
        return f"killed by signal {-self.code}" if self.code < 0 else f"exited with code {self.code}"


def run_worker(
    python: str,
    request: dict,
    workdir: Path,
    log_file: Path,
    *,
    env: dict | None = None,
    new_session: bool = False,
    die_with_parent: bool = False,
    running: set | None = None,
) -> WorkerExit:
    """Run the step described by `request` (step, params, inputs, upstream, out) in `python`, with
    stdout and stderr in `log_file`, and wait for it.

    new_session:      the worker leads its own process group, so the caller can stop it and its
                      children at once (killpg) on Ctrl-C.
    die_with_parent:  Linux: the worker is killed when this process dies (an agent killed
                      mid-step leaves no orphan).
    running:          the Popen is in this set while the worker runs (for such a stop)."""
    result_file = workdir / "result.json"
    request_file = workdir / "request.json"
    request_file.write_text(json.dumps({**request, "result": str(result_file)}))
    env = dict(os.environ if env is None else env)
    if python != sys.executable:
        # a toolchain interpreter must see edgebuild and nothing else of this environment
        from edgebuild.toolchain import worker_pythonpath

        env["PYTHONPATH"] = worker_pythonpath()
    else:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SOURCE_ROOT), env.get("PYTHONPATH")]))
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "wb") as log:
        proc = subprocess.Popen(
            [python, "-m", "edgebuild.worker", str(request_file)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=workdir,
            start_new_session=new_session,
            preexec_fn=_die_with_parent if die_with_parent else None,
        )
        if running is not None:
            running.add(proc)
        try:
            code = proc.wait()
        finally:
            if running is not None:
                running.discard(proc)
    if not result_file.is_file():
        return WorkerExit(code, None)
    return WorkerExit(code, json.loads(result_file.read_text()))


def _die_with_parent() -> None:
    """In the child before exec: ask Linux for SIGKILL when the parent dies."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
