"""Runs steps on a Dask cluster of build agents (`edgebuild agent`), moving files through the shared
remote cache instead of through the Dask scheduler.

For each task the build host makes sure every input blob is in the remote cache, then submits
`agent_side.run_on_agent` with the inputs' DIGESTS (and file listings for folders) and the step's
resources, which only agents advertising them (e.g. `gpu-sm87`) can satisfy. The agent downloads
the inputs into a temp folder, runs the step's worker exactly like LocalExecutor, uploads what the
step wrote and returns status, message, metadata and output records. Back here `run` downloads the
outputs into `task.workdir/out`, so the scheduler ingests them as after a local run and action
keys, cache entries and bundles are the same as a local build's.

`distributed` is imported only when a DaskExecutor connects.
"""

from __future__ import annotations

import atexit
import os
import tempfile
import threading
import uuid
from pathlib import Path

from edgebuild.errors import ConfigError
from edgebuild.executors.agent_side import run_on_agent
from edgebuild.executors.base import Executor, Task, TaskResult
from edgebuild.executors.transfer import digests, download
from edgebuild.hashing import sha256_file, tree_files


class DaskExecutor(Executor):
    """Executor for `--executor dask://HOST:PORT`; needs a remote cache URL shared with the agents."""

    def __init__(self, address: str, remote_url: str | None, jobs: int) -> None:
        if not remote_url:
            raise ConfigError(
                "the dask executor moves files through a shared cache: pass --remote-cache URL, "
                "set [cache] remote in targets.toml or $EDGEBUILD_REMOTE_CACHE"
            )
        from edgebuild.remote_cache import HttpCache

        self.address = address
        self.remote = HttpCache(remote_url)
        self.remote_url = remote_url  # as given: agents need its credentials too (HttpCache.url drops them)
        self.jobs = max(1, jobs)
        self._client = None
        self._connect_lock = threading.Lock()
        self._uploaded: set[str] = set()  # blobs known to be on the remote cache this build
        self._futures: set = set()
        self._source_trees: dict[tuple, dict] = {}

    # --- the cluster ----------------------------------------------------------------------------

    def client(self):
        with self._connect_lock:
            if self._client is None:
                try:
                    from distributed import Client
                except ImportError:
                    raise ConfigError(
                        "the dask executor needs the 'distributed' package: "
                        "pip install 'edgebuild[distributed]'"
                    ) from None
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
        return any(
            all(w.get("resources", {}).get(name, 0) >= amount for name, amount in resources.items())
            for w in workers.values()
        )

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

        payload = {
            "step": task.step,
            "step_version": get_step(task.step).version,
            "params": task.params,
            "upstream": task.upstream,
            "inputs": inputs,
            "toolchain": task.toolchain,
            "key_versions": task.key_versions,
            "device_bound": bool(task.resources),
            "remote": self.remote_url,
            "label": task.label,
        }
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
                download(self.remote, record, out / name)
                self._uploaded.update(digests(record))  # on the remote already: the next step skips the check
        except (RemoteCacheError, LookupError) as exc:
            return TaskResult("failed", f"could not fetch the outputs from the remote cache: {exc}", {}, out)
        return TaskResult(answer["status"], answer["message"], answer.get("metadata") or {}, out)

    def _write_log(self, task: Task, answer: dict, note: str) -> None:
        task.log_file.parent.mkdir(parents=True, exist_ok=True)
        task.log_file.write_text(
            f"# edgebuild: {task.label} ran on agent {answer.get('agent', '?')}\n"
            + note
            + answer.get("log", "")
        )
        if answer.get("log_digest"):  # a long log travelled through the shared cache
            with open(task.log_file, "ab") as log, tempfile.TemporaryDirectory() as tmp:
                if self.remote.get_blob(answer["log_digest"], Path(tmp) / "log"):
                    log.write((Path(tmp) / "log").read_bytes())

    def _submit(self, task: Task, payload: dict, resources: dict) -> dict:
        from distributed import KilledWorker

        client = self.client()
        key = f"edgebuild-{task.step}-{task.node_id[:12]}-{uuid.uuid4().hex[:8]}"  # unique per attempt
        future = client.submit(run_on_agent, payload, key=key, pure=False, resources=resources or None)
        self._futures.add(future)
        try:
            return future.result()
        except KilledWorker as exc:
            return {
                "status": "failed",
                "metadata": {},
                "log": "",
                "message": f"every agent that took this step died while running it ({exc})",
            }
        except Exception as exc:  # the agent could not run it at all (unpicklable, cancelled, ...)
            return {
                "status": "failed",
                "metadata": {},
                "log": "",
                "message": f"dask: {type(exc).__name__}: {exc}",
            }
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
                    files[file.relative_to(path).as_posix()] = {
                        "digest": sha256_file(file),
                        "exec": os.access(file, os.X_OK),
                    }
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
        except Exception:  # already closing (interpreter exit); nothing left to release
            pass


def parse_address(spec: str) -> str:
    """dask://HOST:PORT -> tcp://HOST:PORT (the scheduler's address)."""
    rest = spec[len("dask://") :]
    host, sep, port = rest.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigError(f"--executor dask:// needs HOST:PORT of a dask scheduler, got '{spec}'")
    return f"tcp://{host}:{port}"
