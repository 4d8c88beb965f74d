"""The agent's side of the Dask executor: `run_on_agent` runs one step on a build agent
(`edgebuild agent`), which imports this module to unpickle the task. It needs only the standard
library and edgebuild: inputs come from the shared remote cache by digest, the step runs in its
own worker process (launch.py), and its outputs and long logs go back to the cache.
"""

from __future__ import annotations

import functools
import os
import shutil
import sys
import tempfile
from pathlib import Path

from edgebuild.executors.launch import run_worker
from edgebuild.executors.transfer import download, upload
from edgebuild.hashing import sha256_file

AGENT_ENV = "EDGEBUILD_AGENT"  # set for step processes on an agent: the agent's name
LOG_INLINE_BYTES = 64 * 1024  # longer step logs travel through the shared cache, not the scheduler


def run_on_agent(payload: dict) -> dict:
    """One attempt of one step on a build agent. Idempotent: a fresh temp folder per attempt, and
    uploads are content-addressed, so Dask may rerun it elsewhere when this agent dies."""
    from edgebuild.remote_cache import RemoteCacheError

    agent = os.environ.get(AGENT_ENV) or _worker_name()
    remote = _agent_remote(payload["remote"])
    work = Path(tempfile.mkdtemp(prefix="edgebuild-task-"))
    try:
        problem = _version_mismatch(payload)  # before any download: it is cheap
        if problem:
            return {
                "status": "failed",
                "message": f"agent {agent}: {problem}",
                "metadata": {},
                "outputs": {},
                "log": "",
                "agent": agent,
            }
        inputs = {}
        try:
            for role, record in payload["inputs"].items():
                dest = work / "in" / role / record["name"]
                download(remote, record, dest)
                inputs[role] = str(dest)
        except (RemoteCacheError, LookupError) as exc:
            return {
                "status": "failed",
                "message": f"agent {agent} could not fetch the step's inputs: {exc}",
                "metadata": {},
                "outputs": {},
                "log": "",
                "agent": agent,
            }
        out = work / "out"
        out.mkdir()
        request = {
            "step": payload["step"],
            "params": payload["params"],
            "inputs": inputs,
            "upstream": payload["upstream"],
            "out": str(out),
        }
        done = _run_step(payload.get("toolchain"), work, request, agent)
        log, log_digest = _log_for_return(remote, work / "step.log")
        if done.result is None:
            return {
                "status": "failed",
                "message": f"worker process on agent {agent} {done.how()}",
                "metadata": {},
                "outputs": {},
                "log": log,
                "log_digest": log_digest,
                "agent": agent,
            }
        result = done.result
        outputs = {}
        if result["status"] != "failed":
            try:
                outputs = {entry.name: upload(remote, entry) for entry in sorted(out.iterdir())}
            except RemoteCacheError as exc:
                return {
                    "status": "failed",
                    "message": f"agent {agent} could not upload the outputs: {exc}",
                    "metadata": {},
                    "outputs": {},
                    "log": log,
                    "log_digest": log_digest,
                    "agent": agent,
                }
        return {
            "status": result["status"],
            "message": result.get("message"),
            "metadata": result.get("metadata") or {},
            "outputs": outputs,
            "log": log,
            "log_digest": log_digest,
            "agent": agent,
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run_step(toolchain: dict | None, work: Path, request: dict, agent: str):
    """The step's worker in its toolchain environment on this agent; it dies with the agent."""
    python = sys.executable
    if toolchain is not None:
        from edgebuild.toolchain import ensure

        python = str(ensure(toolchain).python)
    return run_worker(
        python,
        request,
        work,
        work / "step.log",
        env=dict(os.environ, **{AGENT_ENV: agent}),
        die_with_parent=True,
    )


@functools.lru_cache(maxsize=4)
def _agent_remote(url: str):
    """One client per cache URL for the agent's lifetime: its threads keep their connections open."""
    from edgebuild.remote_cache import HttpCache

    return HttpCache(url)


def _version_mismatch(payload: dict) -> str | None:
    """Why this agent must not run the step under the build host's action key, or None.

    The key holds the step version and the host's library versions; a result made with others
    would be cached under a key that does not describe it. Device-bound steps are the exception:
    their parameters name the device class and runtime versions, and the host rarely has them."""
    from types import SimpleNamespace

    from edgebuild.actionkey import toolchain_versions
    from edgebuild.steps import get_step

    cls = get_step(payload["step"])
    if cls.version != payload["step_version"]:
        return (
            f"step {payload['step']} is version {cls.version} here and {payload['step_version']} on the build "
            f"host: install the same edgebuild on both"
        )
    if payload["device_bound"]:
        return None
    if payload.get("toolchain") is not None:
        from edgebuild.toolchain import ensure

        ensure(payload["toolchain"])
    mine = toolchain_versions(SimpleNamespace(step_cls=cls, toolchain=payload.get("toolchain")))
    differ = [
        f"{name} {mine.get(name)} here, {value} on the build host"
        for name, value in payload["key_versions"].items()
        if mine.get(name) != value
    ]
    if differ:
        return f"versions in the action key of {payload['step']} differ ({'; '.join(differ)}): install the same ones"
    return None


def _log_for_return(remote, path: Path) -> tuple[str, str | None]:
    """A short log goes back in the answer; a long one (TensorFlow's) through the shared cache."""
    if path.stat().st_size <= LOG_INLINE_BYTES:
        return path.read_text(errors="replace"), None
    digest = sha256_file(path)
    remote.put_blob(digest, path)
    return "", digest


def _worker_name() -> str:
    try:
        from distributed import get_worker

        worker = get_worker()
        return str(worker.name or worker.address)
    except (ImportError, ValueError):
        return "?"
