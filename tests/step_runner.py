"""Running one step in a test the way a build runs it: through edgebuild's worker entry, so the
step sees what it sees in a build (a JSON request: params and input paths as a worker reads them
from request.json) and the test sees what the executor sees (the JSON result: status, message,
metadata).

In this process (the default) it calls `edgebuild.worker.run_request`, which the inline executor
and `python -m edgebuild.worker` both call, so a test can still monkeypatch what the step imports.
With `python=` it starts `python -m edgebuild.worker` through edgebuild's one worker launcher
(executors/launch.py), as the local executor does for a step with its own toolchain environment.
"""

from __future__ import annotations

import json
from pathlib import Path

from edgebuild.steps.base import Deferred, StepFailed


def run_step(
    kind: str,
    out: Path,
    inputs: dict,
    params: dict | None = None,
    upstream: dict | None = None,
    *,
    python: str | Path | None = None,
    env: dict | None = None,
    **more_params,
) -> dict:
    """Run step `kind` on `inputs` ({role: path}) with `params` (a dict, keywords, or both) and the
    `upstream` metadata ({role: metadata of the step that made it}), writing under `out`; returns the
    step's metadata. A failed step raises StepFailed and a deferred one Deferred, with the result's
    message and its metadata as `.metadata`, like the step itself."""
    out.mkdir(parents=True, exist_ok=True)
    request = {
        "step": kind,
        "params": {**(params or {}), **more_params},
        "inputs": {role: str(path) for role, path in inputs.items()},
        "upstream": upstream or {},
        "out": str(out),
    }
    request = json.loads(json.dumps(request))  # what a worker reads from its request.json
    if python is None:
        from edgebuild.worker import run_request

        result = json.loads(json.dumps(run_request(request), default=str))  # as worker.main writes it
    else:
        result = _in_worker_process(str(python), request, out, env)
    if result["status"] == "failed":
        raise _with_metadata(StepFailed(result["message"]), result)
    if result["status"] == "deferred":
        raise _with_metadata(Deferred(result["message"]), result)
    assert result["status"] == "ok", result
    return result["metadata"]


def _in_worker_process(python: str, request: dict, out: Path, env: dict | None) -> dict:
    from edgebuild.executors.launch import run_worker

    workdir = out.parent / f"{out.name}.worker"
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "step.log"
    done = run_worker(python, request, workdir, log, env=env)
    assert done.result is not None, f"worker process {done.how()}:\n{log.read_text(errors='replace')[-3000:]}"
    return done.result


def _with_metadata(exc: Exception, result: dict) -> Exception:
    exc.metadata = result.get("metadata") or {}
    return exc
