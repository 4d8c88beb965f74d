"""Runs a step graph: cached nodes are settled at once, the rest run in parallel through an
executor, failures block only their dependents; the run ends in a BuildResult (build_result.py),
which collect.py sums up per target. What to do with each node is decision.py's `decide()`, which
`build -n` shares.

Per node: compute the action key from the actual input digests; a hit in the action cache settles
it. A miss takes a per-key lock (so two concurrent builds never run the same work twice), checks
the cache again, runs the step in a worker, moves its outputs into the content store and only then
writes the action-cache entry: a build killed at any moment leaves either a complete entry or none.
"""

from __future__ import annotations

import shutil
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path

from edgebuild.actionkey import toolchain_versions
from edgebuild.build_result import BuildResult, Outcome
from edgebuild.cache import LocalCache
from edgebuild.decision import CACHED, RUN, Decision, decide, key_of, look_up
from edgebuild.executors.base import Executor, Task
from edgebuild.fsutil import file_lock
from edgebuild.graph import Graph, Node
from edgebuild.hashing import StatCache
from edgebuild.progress import Reporter


class Scheduler:
    def __init__(
        self,
        project_root: Path,
        graph: Graph,
        cache: LocalCache,
        stats: StatCache,
        executor: Executor,
        reporter: Reporter,
    ) -> None:
        self.root = project_root
        self.graph, self.cache, self.stats, self.executor, self.reporter = (
            graph,
            cache,
            stats,
            executor,
            reporter,
        )
        self.outcomes: dict[str, Outcome] = {}
        self.logs_dir = project_root / ".edgebuild" / "logs"
        self._locks_dir = cache.root / "locks"
        self._local_only: set[str] | None = None  # see remote_trust.py

    def remote_ok(self, node: Node) -> bool:
        """Whether this node may take a remote entry (or a local copy of one taken without the key):
        always when entries are authenticated, else only when a verification step here re-checks
        its result."""
        actions = self.cache.actions
        if actions.remote_authenticated:
            return True
        if self._local_only is None:
            from edgebuild.remote_trust import local_only_nodes

            self._local_only = local_only_nodes(self.graph)
        return node.id not in self._local_only

    def decide(self, node: Node) -> Decision:
        """decision.py's verdict on this node, given the outcomes settled so far."""
        return decide(node, self.graph, self.outcomes, self.cache.actions, self.remote_ok)

    # --- running ------------------------------------------------------------------------------

    def run(self) -> BuildResult:
        nodes = self.graph.nodes
        waiting = {nid: set(n.deps) for nid, n in nodes.items()}
        consumers = self.graph.consumers()
        ready = [nid for nid, deps in waiting.items() if not deps]
        running: dict[Future, str] = {}
        self.reporter.start(len(nodes))
        pool = None  # created on the first node that must run: a no-op build starts no threads
        try:
            while ready or running:
                while ready:
                    nid = ready.pop(0)
                    outcome = self._settle_without_running(nodes[nid])
                    if outcome is None:
                        self.reporter.node_started(nodes[nid])
                        if pool is None:
                            pool = ThreadPoolExecutor(self.executor.capacity, thread_name_prefix="edgebuild")
                        running[pool.submit(self._execute, nodes[nid])] = nid
                    else:
                        self._finish(nid, outcome, consumers, waiting, ready)
                if running:
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in done:
                        nid = running.pop(future)
                        self._finish(nid, future.result(), consumers, waiting, ready)
        except BaseException:
            self.executor.shutdown()
            raise
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
            self.reporter.stop()
        if not self.cache.actions.remote_authenticated and any(
            o.status == "failed" for o in self.outcomes.values()
        ):
            from edgebuild.remote_trust import drop_after_failed_verification

            drop_after_failed_verification(self.graph, self.outcomes, self.cache.actions)
        return BuildResult(
            root=self.root,
            graph=self.graph,
            outcomes=dict(self.outcomes),
            store=self.cache.store,
            stats=self.stats,
        )

    def _finish(self, nid: str, outcome: Outcome, consumers, waiting, ready) -> None:
        self.outcomes[nid] = outcome
        self.reporter.node_done(self.graph.nodes[nid], outcome)
        for consumer in consumers[nid]:
            waiting[consumer].discard(nid)
            if not waiting[consumer]:
                ready.append(consumer)

    def _settle_without_running(self, node: Node) -> Outcome | None:
        """The node's outcome when it needs no run (a hit, blocked), else None."""
        decision = self.decide(node)
        if decision.action == RUN:
            return None
        if decision.action == CACHED:
            self.cache.actions.touch(decision.key)
        return Outcome.of(decision)

    def _execute(self, node: Node) -> Outcome:
        started = time.monotonic()
        python = None
        if node.toolchain is not None:
            from edgebuild.toolchain import ensure

            python = str(ensure(node.toolchain).python)
        key, parts = key_of(node, self.outcomes, toolchain_versions(node))
        with file_lock(self._locks_dir / key[:2] / f"{key}.lock"):
            decision = look_up(key, parts, self.cache.actions, self.remote_ok(node))
            if decision.action == CACHED:  # another build finished it while we waited
                return Outcome.of(decision)
            workdir = self.cache.store.tmp_dir()
            try:
                return self._run_step(node, key, parts, workdir, python, started)
            finally:
                shutil.rmtree(workdir, ignore_errors=True)

    def _run_step(
        self, node: Node, key: str, parts: dict, workdir: Path, python: str | None, started: float
    ) -> Outcome:
        inputs, upstream, records = {}, {}, {}
        for role, ref in node.inputs.items():
            if ref.node is None:
                inputs[role] = str(ref.path)
                if ref.path.is_file():
                    records[role] = {"type": "file", "digest": ref.digest}
            else:
                up = self.outcomes[ref.node].entry
                inputs[role] = str(self.cache.store.output_path(up["outputs"][ref.output]))
                upstream[role] = up.get("metadata", {})
                records[role] = up["outputs"][ref.output]
        target, step_id = next(iter(node.uses.items()))
        log = self.logs_dir / target / f"{step_id}.log"
        task = Task(
            node_id=node.id,
            label=node.label,
            step=node.step,
            params=node.params,
            inputs=inputs,
            upstream=upstream,
            workdir=workdir,
            log_file=log,
            resources=node.step_cls().resources(node.params),
            input_records=records,
            toolchain=node.toolchain,
            key_versions=parts["toolchain"],
        )
        if python:
            task.python = python
        result = self.executor.run(task)
        seconds = time.monotonic() - started
        if (
            result.status == "failed"
        ):  # not cached; its metadata (gate figures, coverage) still reaches the summary
            return Outcome(
                "failed",
                key=key,
                parts=parts,
                message=result.message,
                log=log,
                seconds=seconds,
                entry={"status": "failed", "outputs": {}, "metadata": result.metadata},
            )
        outputs = {}
        for name in node.step_cls.outputs:
            produced = result.out_dir / name
            if produced.is_dir():
                outputs[name] = self.cache.store.put_tree(produced)
            elif produced.is_file():
                outputs[name] = self.cache.store.put_file(produced)
            elif result.status == "ok":
                return Outcome(
                    "failed",
                    key=key,
                    parts=parts,
                    log=log,
                    seconds=seconds,
                    message=f"step {node.step} did not write its declared output '{name}'",
                )
        entry = {
            "status": result.status,
            "message": result.message,
            "outputs": outputs,
            "metadata": result.metadata,
            "step": node.step,
            "label": node.label,
            "seconds": round(seconds, 3),
        }
        self.cache.actions.put(key, entry)
        return Outcome(
            "run" if result.status == "ok" else "deferred",
            key=key,
            parts=parts,
            entry=entry,
            message=result.message,
            log=log,
            seconds=seconds,
        )
