"""`build --dry-run`: what would run, and why, without running anything.

Each node's key parts are compared with those recorded by the last build of the same target step
(state.py), so the reason names what changed: the step's version, a parameter, a toolchain
version, or which input file changed.
"""

from __future__ import annotations

from edgebuild.build_result import Outcome
from edgebuild.decision import BLOCKED, CACHE_MISS, CACHED, NEEDS_DATA, decide
from edgebuild.scheduler import Scheduler
from edgebuild.state import TargetState


def why_changed(old: dict | None, new: dict, node, failed: str | None = None) -> list[str]:
    if old is None:
        return ["no cache entry: never built"]
    reasons = [f"failed last time (failures are not cached): {failed}"] if failed else []
    if old.get("step") != new["step"] or old.get("version") != new["version"]:
        reasons.append(f"step {new['step']} version {old.get('version')} -> {new['version']}")
    for name in sorted(set(old.get("params", {})) | set(new["params"])):
        before, after = old.get("params", {}).get(name), new["params"].get(name)
        if before != after:
            reasons.append(f"parameter {name}: {before!r} -> {after!r}")
    for name in sorted(set(old.get("toolchain", {})) | set(new["toolchain"])):
        before, after = old.get("toolchain", {}).get(name), new["toolchain"].get(name)
        if before != after:
            reasons.append(f"toolchain {name}: {before} -> {after}")
    for role in sorted(set(old.get("inputs", {})) | set(new["inputs"])):
        if old.get("inputs", {}).get(role) != new["inputs"].get(role):
            reasons.append(
                f"input '{role}' changed ({node.inputs[role].label})"
                if role in node.inputs
                else f"input '{role}' removed"
            )
    return reasons or ["cache entry missing (cleaned or evicted)"]


def dry_run(sched: Scheduler) -> list[dict]:
    """One row per node: label, step, targets, would_run, reasons. Each node gets the scheduler's
    own decision (decision.py), made as if every step that would run had not produced its outputs
    yet; only the wording is this module's. The scheduler itself is left as it was."""
    states: dict[str, TargetState] = {}
    planned_outcomes: dict[str, Outcome] = {}
    rows = []
    for nid in sched.graph.run_order():
        node = sched.graph.nodes[nid]
        target, step_id = next(iter(node.uses.items()))
        state = states.setdefault(target, TargetState.load(sched.root, target))
        row = {"label": node.label, "step": node.step, "targets": sorted(node.uses), "would_run": True}
        decision = decide(node, sched.graph, planned_outcomes, sched.cache.actions, sched.remote_ok)
        planned = Outcome("run")  # would run: its outputs are unknown, so its consumers wait on it
        if decision.action == CACHED:
            row.update(would_run=False, reasons=[])
            planned = Outcome.of(decision)
        elif decision.cause == NEEDS_DATA:  # the build would try it and fail with this note
            row["reasons"] = [f"cannot run: {decision.reason}"]
        elif decision.action == BLOCKED:  # behind a step a cached entry deferred on this host
            row.update(would_run=False, reasons=[decision.reason])
            planned = Outcome.of(decision)
        elif decision.cause == CACHE_MISS:
            recorded = state.steps.get(step_id, {})
            row["reasons"] = why_changed(recorded.get("parts"), decision.parts, node, recorded.get("failed"))
        else:
            row["reasons"] = [decision.reason]
        planned_outcomes[nid] = planned
        rows.append(row)
    return rows
