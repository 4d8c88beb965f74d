"""Runs steps on a Dask cluster of build agents (`edgebuild agent`), moving files through the shared
remote cache instead of through the Dask scheduler.

For each task the build host makes sure every input blob is in the remote cache, then submits
`run_on_agent` with the inputs' DIGESTS (and file listings for folders) and the step's resources,
which only agents advertising them (e.g. `gpu-sm87`) can satisfy. The agent downloads the inputs
into a temp folder, runs `python -m edgebuild.worker` there exactly like LocalExecutor, uploads what
the step wrote and returns status, message, metadata and output records. Back here `run` downloads
the outputs into `task.workdir/out`, so the scheduler ingests them as after a local run and action
keys, cache entries and bundles are the same as a local build's.

`distributed` is imported only when a DaskExecutor connects; agents import this module to run
`run_on_agent`, which needs only the standard library and edgebuild.
"""
from __future__ import annotations

import atexit
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import uuid
from pathlib import Path

from edgebuild.errors import ConfigError
from edgebuild.executor import SOURCE_ROOT, Executor, Task, TaskResult
from edgebuild.hashing import sha256_file, tree_files

AGENT_ENV = "EDGEBUILD_AGENT"      # set for step processes on an agent: the agent's name
LOG_INLINE_BYTES = 64 * 1024       # longer step logs travel through the shared cache, not the scheduler


class DaskExecutor(Executor):
    """Executor for `--executor dask://HOST:PORT`; needs a remote cache URL shared with the agents."""

    def __init__(self, address: str, remote_url: str | None, jobs: int) -> None:
        if not remote_url:
            raise ConfigError("the dask executor moves files through a shared cache: pass --remote-cache URL, "
                              "set [cache] remote in targets.toml or $EDGEBUILD_REMOTE_CACHE")
        from edgebuild.remote_cache import HttpCache
        self.address = address
        self.remote = HttpCache(remote_url)
        self.remote_url = remote_url     # as given: agents need its credentials too (HttpCache.url drops them)
        self.jobs = max(1, jobs)
        self._client = None
        self._connect_lock = threading.Lock()
        self._uploaded: set[str] = set()      # blobs known to be on the remote cache this build
        self._futures: set = set()
        self._source_trees: dict[tuple, dict] = {}

    # --- the cluster ----------------------------------------------------------------------------

    def client(self):
        with self._connect_lock:
            if self._client is None:
                try:
                    from distributed import Client
                except ImportError:
                    raise ConfigError("the dask executor needs the 'distributed' package: "
                                      "pip install 'edgebuild[distributed]'") from None
                try:
                    self._client = Client(self.address, timeout=15, set_as_default=False)
                except (OSError, TimeoutError) as exc:
                    raise ConfigError(f"cannot reach the dask scheduler at {self.address}: {exc}") from None
                atexit.register(self.shutdown)
            return self._client

    @property
    def capacity(self) -> int:
        """Enough threads to keep every agent busy (each waiting task costs one idle thread here)."""
        workers = self.client().scheduler_info(n_workers=-1).get("workers", {})
        return max(self.jobs, sum(w.get("nthreads", 1) for w in workers.values()))

    def _advertised(self, resources: dict) -> bool:
        workers = self.client().scheduler_info(n_workers=-1).get("workers", {})
        return any(all(w.get("resources", {}).get(name, 0) >= amount for name, amount in resources.items())
                   for w in workers.values())

    # --- one task -------------------------------------------------------------------------------

    def run(self, task: Task) -> TaskResult:
        out = task.workdir / "out"
        out.mkdir(parents=True, exist_ok=True)
        from edgebuild.remote_cache import RemoteCacheError
        try:
            inputs = {role: self._publish(role, Path(path), task) for role, path in task.inputs.items()}
        except RemoteCacheError as exc:
            return TaskResult("failed", f"could not upload the step's inputs: {exc}", {}, out)
        from edgebuild.steps import get_step
        payload = {"step": task.step, "step_version": get_step(task.step).version, "params": task.params,
                   "upstream": task.upstream, "inputs": inputs, "toolchain": task.toolchain,
                   "key_versions": task.key_versions, "device_bound": bool(task.resources),
                   "remote": self.remote_url, "label": task.label}
        resources = dict(task.resources)
        note = ""
        if resources and not self._advertised(resources):
            # like a local build on a host without the device: the step runs anywhere and defers
            note = f"no agent advertises {resources}: ran without that requirement\n"
            resources = {}
        answer = self._submit(task, payload, resources)
        try:
            self._write_log(task, answer, note)
            if answer["status"] == "failed":
                return TaskResult("failed", answer["message"], answer.get("metadata") or {}, out)
            for name, record in answer["outputs"].items():
                _download(self.remote, record, out / name)
                self._uploaded.update(_digests(record))    # on the remote already: the next step skips the check
        except (RemoteCacheError, LookupError) as exc:
            return TaskResult("failed", f"could not fetch the outputs from the remote cache: {exc}", {}, out)
        return TaskResult(answer["status"], answer["message"], answer.get("metadata") or {}, out)

    def _write_log(self, task: Task, answer: dict, note: str) -> None:
        task.log_file.parent.mkdir(parents=True, exist_ok=True)
        task.log_file.write_text(f"# edgebuild: {task.label} ran on agent {answer.get('agent', '?')}\n" + note
                                 + answer.get("log", ""))
        if answer.get("log_digest"):    # a long log travelled through the shared cache
            with open(task.log_file, "ab") as log, tempfile.TemporaryDirectory() as tmp:
                if self.remote.get_blob(answer["log_digest"], Path(tmp) / "log"):
                    log.write((Path(tmp) / "log").read_bytes())

    def _submit(self, task: Task, payload: dict, resources: dict) -> dict:
        from distributed import KilledWorker
        client = self.client()
        key = f"edgebuild-{task.step}-{task.node_id[:12]}-{uuid.uuid4().hex[:8]}"   # unique per attempt
        future = client.submit(run_on_agent, payload, key=key, pure=False, resources=resources or None)
        self._futures.add(future)
        try:
            return future.result()
        except KilledWorker as exc:
            return {"status": "failed", "metadata": {}, "log": "",
                    "message": f"every agent that took this step died while running it ({exc})"}
        except Exception as exc:   # the agent could not run it at all (unpicklable, cancelled, ...)
            return {"status": "failed", "metadata": {}, "log": "", "message": f"dask: {type(exc).__name__}: {exc}"}
        finally:
            self._futures.discard(future)

    def _publish(self, role: str, path: Path, task: Task) -> dict:
        """Put the input's blobs on the remote cache; its record (digests, listing) travels in the task."""
        record = task.input_records.get(role) or self._describe_source(path)
        if record["type"] == "file":
            self._upload(record["digest"], path)
        else:
            for rel, entry in record["files"].items():
                self._upload(entry["digest"], path / rel)
        return {**record, "name": path.name}

    def _describe_source(self, path: Path) -> dict:
        """Record of a source file or folder that is not in the cache (hashed once per build)."""
        stat = path.stat()
        memo = (str(path), stat.st_size, stat.st_mtime_ns)
        if memo not in self._source_trees:
            if path.is_dir():
                files = {}
                for file in tree_files(path):
                    files[file.relative_to(path).as_posix()] = {"digest": sha256_file(file),
                                                                "exec": os.access(file, os.X_OK)}
                self._source_trees[memo] = {"type": "tree", "files": files}
            else:
                self._source_trees[memo] = {"type": "file", "digest": sha256_file(path)}
        return self._source_trees[memo]

    def _upload(self, digest: str, path: Path) -> None:
        if digest in self._uploaded:
            return
        if not self.remote.has_blob(digest):
            self.remote.put_blob(digest, path)
        self._uploaded.add(digest)

    def shutdown(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            if self._futures:
                client.cancel(list(self._futures))
            client.close(timeout=5)
        except Exception:   # already closing (interpreter exit); nothing left to release
            pass


# --- on the agent ---------------------------------------------------------------------------------

def run_on_agent(payload: dict) -> dict:
    """One attempt of one step on a build agent. Idempotent: a fresh temp folder per attempt, and
    uploads are content-addressed, so Dask may rerun it elsewhere when this agent dies."""
    from edgebuild.remote_cache import RemoteCacheError

    agent = os.environ.get(AGENT_ENV) or _worker_name()
    remote = _agent_remote(payload["remote"])
    work = Path(tempfile.mkdtemp(prefix="edgebuild-task-"))
    try:
        problem = _version_mismatch(payload)    # before any download: it is cheap
        if problem:
            return {"status": "failed", "message": f"agent {agent}: {problem}", "metadata": {}, "outputs": {},
                    "log": "", "agent": agent}
        inputs = {}
        try:
            for role, record in payload["inputs"].items():
                dest = work / "in" / role / record["name"]
                _download(remote, record, dest)
                inputs[role] = str(dest)
        except (RemoteCacheError, LookupError) as exc:
            return {"status": "failed", "message": f"agent {agent} could not fetch the step's inputs: {exc}",
                    "metadata": {}, "outputs": {}, "log": "", "agent": agent}
        out = work / "out"
        out.mkdir()
        request = {"step": payload["step"], "params": payload["params"], "inputs": inputs,
                   "upstream": payload["upstream"], "out": str(out), "result": str(work / "result.json")}
        (work / "request.json").write_text(json.dumps(request))
        code = _run_worker(payload.get("toolchain"), work, agent)
        log, log_digest = _log_for_return(remote, work / "step.log")
        result_file = work / "result.json"
        if not result_file.is_file():
            how = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
            return {"status": "failed", "message": f"worker process on agent {agent} {how}", "metadata": {},
                    "outputs": {}, "log": log, "log_digest": log_digest, "agent": agent}
        result = json.loads(result_file.read_text())
        outputs = {}
        if result["status"] != "failed":
            try:
                outputs = {entry.name: _upload_output(remote, entry) for entry in sorted(out.iterdir())}
            except RemoteCacheError as exc:
                return {"status": "failed", "message": f"agent {agent} could not upload the outputs: {exc}",
                        "metadata": {}, "outputs": {}, "log": log, "log_digest": log_digest, "agent": agent}
        return {"status": result["status"], "message": result.get("message"), "metadata": result.get("metadata") or {},
                "outputs": outputs, "log": log, "log_digest": log_digest, "agent": agent}
    finally:
        shutil.rmtree(work, ignore_errors=True)


@functools.lru_cache(maxsize=4)
def _agent_remote(url: str):
    """One client per cache URL for the agent's lifetime: its threads keep their connections open."""
    from edgebuild.remote_cache import HttpCache
    return HttpCache(url)


def _digests(record: dict) -> list[str]:
    return [record["digest"]] if record["type"] == "file" else [f["digest"] for f in record["files"].values()]


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
        return (f"step {payload['step']} is version {cls.version} here and {payload['step_version']} on the build "
                f"host: install the same edgebuild on both")
    if payload["device_bound"]:
        return None
    if payload.get("toolchain") is not None:
        from edgebuild.toolchain import ensure
        ensure(payload["toolchain"])
    mine = toolchain_versions(SimpleNamespace(step_cls=cls, toolchain=payload.get("toolchain")))
    differ = [f"{name} {mine.get(name)} here, {value} on the build host"
              for name, value in payload["key_versions"].items() if mine.get(name) != value]
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


def _run_worker(toolchain: dict | None, work: Path, agent: str) -> int:
    """`python -m edgebuild.worker` in the step's toolchain environment on this agent."""
    env = dict(os.environ, **{AGENT_ENV: agent})
    python = sys.executable
    if toolchain is not None:
        from edgebuild.toolchain import ensure, worker_pythonpath
        python = str(ensure(toolchain).python)
        env["PYTHONPATH"] = worker_pythonpath()
    else:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SOURCE_ROOT), env.get("PYTHONPATH")]))
    with open(work / "step.log", "wb") as log:
        proc = subprocess.Popen([python, "-m", "edgebuild.worker", str(work / "request.json")], stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=work,
                                preexec_fn=_die_with_parent)
        return proc.wait()


def _die_with_parent() -> None:
    """Linux: the step process is killed when the agent dies, so a killed agent leaves no orphan."""
    try:
        import ctypes
        import signal
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _worker_name() -> str:
    try:
        from distributed import get_worker
        worker = get_worker()
        return str(worker.name or worker.address)
    except (ImportError, ValueError):
        return "?"


def _upload_output(remote, path: Path) -> dict:
    if path.is_dir():
        files = {}
        for file in tree_files(path):
            digest = sha256_file(file)
            remote.put_blob(digest, file)
            files[file.relative_to(path).as_posix()] = {"digest": digest, "exec": os.access(file, os.X_OK)}
        return {"type": "tree", "files": files}
    digest = sha256_file(path)
    remote.put_blob(digest, path)
    return {"type": "file", "digest": digest}


def _download(remote, record: dict, dest: Path) -> None:
    """Fetch a file or folder record from the remote cache to `dest` (LookupError: a blob is missing)."""
    if record["type"] == "file":
        if not remote.get_blob(record["digest"], dest):
            raise LookupError(f"blob {record['digest'][:12]} is not in the remote cache {remote.url}")
        return
    dest.mkdir(parents=True, exist_ok=True)
    for rel, entry in record["files"].items():
        mode = 0o755 if entry.get("exec") else 0o644
        if not remote.get_blob(entry["digest"], dest / rel, mode=mode):
            raise LookupError(f"blob {entry['digest'][:12]} ({rel}) is not in the remote cache {remote.url}")


def parse_address(spec: str) -> str:
    """dask://HOST:PORT -> tcp://HOST:PORT (the scheduler's address)."""
    rest = spec[len("dask://"):]
    host, sep, port = rest.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigError(f"--executor dask:// needs HOST:PORT of a dask scheduler, got '{spec}'")
    return f"tcp://{host}:{port}"
